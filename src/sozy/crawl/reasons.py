"""The crawl's own outcome reasons, and which reasons are skips rather than failures.

The fetcher's and the engine's reasons are their errors' ``code``: ``SKIP_REASONS``
takes them from there, so a renamed code cannot silently turn a skip into a failure.
"""

from __future__ import annotations

from sozy.faces.errors import EmptyImage, ImageTooLarge, NotAnImage
from sozy.fetch import errors as fetch_errors

DUPLICATE_CONTENT = "duplicate_content"  # the same bytes as a photo another URL owns
NO_FACE = "no_face"
TAKEN_DOWN = "taken_down"  # a recorded takedown matches the photo
STORE_ERROR = "store_error"  # the store write failed after its retries

# Reasons that mean "not a face photo we may store", not "something went wrong":
# recorded as skipped and not retried by --retry-failed.
SKIP_REASONS = frozenset(
    {
        fetch_errors.ROBOTS_TXT,
        fetch_errors.X_ROBOTS_TAG,
        fetch_errors.NOT_AN_IMAGE,
        fetch_errors.EMPTY_BODY,
        fetch_errors.TOO_LARGE,
        NotAnImage.code,
        EmptyImage.code,
        ImageTooLarge.code,
        DUPLICATE_CONTENT,
        NO_FACE,
        TAKEN_DOWN,
    }
)
