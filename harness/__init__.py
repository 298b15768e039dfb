"""Real processes and media for the end-to-end tests, the hardening tests and the benchmark.

One place starts a deployment the way users run it (`pandagpt serve`, or a split
deployment of workers, gateways and Redis), waits for it to be ready and stops it
(SIGTERM, then SIGKILL); one place writes test media with PyAV. Nothing here
imports the tests or the benchmark: both import it.
"""
