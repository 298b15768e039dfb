"""The handler of `pandagpt batch`: arguments → a plan → a run → an exit status.

Exit statuses: 0 when every line of the output succeeded, 1 when some are
errors, 2 for a usage error found before anything was sent (a bad input line, a
duplicate custom_id, an unknown url, an output file that is not ours, a service
that refuses `GET /v1/models`), 128 + the signal when stopped (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import urllib.parse
from contextlib import AbstractAsyncContextManager

import httpx

from service.batch.client import RetryPolicy, service_client
from service.batch.format import UsageError
from service.batch.progress import EXIT_USAGE
from service.batch.runner import ClientFactory, RunOptions, plan, run


def run_batch_cli(args: argparse.Namespace) -> int:
    try:
        options = RunOptions(
            input=args.input,
            output=args.output,
            concurrency=args.concurrency,
            policy=_policy(args),
            retry_errors=args.retry_errors,
            progress_interval_s=args.progress_interval,
        )
        connect = _connector(args)
        the_plan = plan(options)
        summary = asyncio.run(run(the_plan, options, connect))
    except UsageError as exc:
        print(f"pandagpt batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before requests were sent (loading a model, the preflight)
        print("pandagpt batch: stopped before any request was sent", file=sys.stderr)
        return 128 + signal.SIGINT
    print(summary.text(), flush=True)
    return summary.exit_code


def _policy(args: argparse.Namespace) -> RetryPolicy:
    try:
        return RetryPolicy(
            max_attempts=args.max_attempts, timeout_s=args.timeout, backoff_s=args.backoff
        )
    except ValueError as exc:
        raise UsageError([str(exc)]) from None


def _connector(args: argparse.Namespace) -> ClientFactory:
    """How to reach the service: its URL, or the app in this process."""
    if args.url is not None:
        if args.model_dir is not None or args.config is not None:
            raise UsageError(["--model-dir and --config are for in-process runs (no --url)"])
        scheme = urllib.parse.urlsplit(args.url).scheme
        if scheme not in ("http", "https"):
            raise UsageError([f"--url must be an http(s) URL (got {args.url!r})"])
        url, concurrency = args.url, args.concurrency
        key = args.api_key or os.environ.get("PANDAGPT_API_KEY")

        def remote() -> AbstractAsyncContextManager[httpx.AsyncClient]:
            return service_client(url, api_key=key, concurrency=concurrency)

        return remote
    if args.model_dir is not None and not args.model_dir.is_dir():
        raise UsageError([f"--model-dir {args.model_dir} is not a folder"])
    model_dir, config = args.model_dir, args.config

    def in_process() -> AbstractAsyncContextManager[httpx.AsyncClient]:
        from service.batch.inprocess import in_process_client

        return in_process_client(model_dir, config)

    return in_process
