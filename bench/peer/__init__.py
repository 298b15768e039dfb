"""The service side by side with what a team would run instead (bench/peer/compare.py)."""

from bench.peer.compare import add_arguments, run

__all__ = ["add_arguments", "run"]
