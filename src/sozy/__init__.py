"""Sozy: celebrity lookalike search.

The package follows the data path: ``sources`` → ``fetch`` → ``faces`` →
``store`` → ``api``, wired together by ``crawl`` (the crawler) and ``api``
(the search service). ``config`` and ``records`` are shared by all stages.
"""

__version__ = "0.1.0"
