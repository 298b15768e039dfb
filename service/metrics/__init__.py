"""Prometheus metrics, all prefixed `pandagpt_`, on one registry per `Metrics` object.

One `Metrics` is made per process (per app in tests) and passed down; nothing
registers on prometheus-client's global registry. Names are a contract with the
dashboards and alert rules in deploy/: see README.md beside this file.
"""

from service.metrics.metrics import Metrics, render_latest

__all__ = ["Metrics", "render_latest"]
