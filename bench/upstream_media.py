"""Moved to `reference.media`; this alias serves bench/media.py until its import follows."""

from reference.media import preprocess_upstream

__all__ = ["preprocess_upstream"]
