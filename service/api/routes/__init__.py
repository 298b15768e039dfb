"""Operational routes: health and metrics."""
