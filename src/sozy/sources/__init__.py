"""Photo candidates for the crawler: where photos are, and who is in them.

Each source turns one kind of input into ``Candidate`` records:

- ``WikidataNames``: names or Q-ids → Commons photos; ``top_people`` via SPARQL
- ``ImageSearch``: names → an image search engine's results (opt-in)
- ``read_url_list``: a txt / csv / tsv / jsonl list of photo URLs, streamed
- ``read_folders``: ``<root>/<person>/<photo>`` on disk
- ``PageSource``: HTML pages and the same-site pages they link to
- ``read_names``: a ``--names`` list file (names or Q-ids, one a line)

Sources parse; the fetch stage fetches. Parsing lives in pure functions so it
is tested without a network.
"""

from __future__ import annotations

from .errors import SourceError, UrlListError
from .folders import read_folders
from .names import read_names
from .pages import PageSource
from .search import ImageSearch
from .urls import UrlListReport, read_url_list
from .wikidata import OCCUPATIONS, WikidataNames

__all__ = [
    "OCCUPATIONS",
    "ImageSearch",
    "PageSource",
    "SourceError",
    "UrlListError",
    "UrlListReport",
    "WikidataNames",
    "read_folders",
    "read_names",
    "read_url_list",
]
