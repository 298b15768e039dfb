"""Compile a job's output constraint before the engine sees it, time-bounded and
off the event loop, so a schema the grammar compiler rejects, or one that takes
too long to compile, is a 400 naming the request field, never an engine error.

vLLM compiles again in its engine-core process (its own cache, same backend and
options: xgrammar, compact JSON), so a constraint that passes here compiles
there too. A compile that overruns the bound keeps its thread until it ends
(threads cannot be stopped); the gateway's size and depth limits on schemas
keep that rare, and the pool is small so it cannot take the machine's cores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from service.contract import OutputConstraint
from service.errors import InvalidRequest

_log = logging.getLogger(__name__)
_SEPARATORS = (",", ":")  # compact JSON, as the engine is configured (engine.py)


class GrammarChecker:
    """Compiles constraints with xgrammar against the served tokenizer."""

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int | None = None,
        timeout_s: float = 5.0,
        threads: int = 2,
        cache_bytes: int = 64 << 20,
    ) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._timeout_s = timeout_s
        self._cache_bytes = cache_bytes
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grammar")
        self._compiler: Any = None

    def _compiler_of(self) -> Any:
        # Built on first use, in a pool thread: reading the vocabulary takes a while.
        if self._compiler is None:
            import xgrammar as xgr

            info = xgr.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._vocab_size)
            self._compiler = xgr.GrammarCompiler(
                info, max_threads=1, cache_enabled=True, cache_limit_bytes=self._cache_bytes
            )
        return self._compiler

    def compile(self, constraint: OutputConstraint) -> float:
        """Compile in this thread; the seconds it took. Raises what xgrammar raises."""
        compiler = self._compiler_of()
        start = time.perf_counter()
        if constraint.kind in ("json_object", "json_schema"):
            schema = constraint.json_schema if constraint.kind == "json_schema" else None
            compiler.compile_json_schema(
                json.dumps(schema or {"type": "object"}),
                any_whitespace=False,
                separators=_SEPARATORS,
            )
        elif constraint.kind == "regex":
            compiler.compile_regex(constraint.regex or "")
        elif constraint.kind == "choice":
            compiler.compile_regex("|".join(_regex_literal(c) for c in constraint.choice or []))
        else:
            compiler.compile_structural_tag(*_structural_tag(constraint.structural_tag or "{}"))
        return time.perf_counter() - start

    async def check(self, constraint: OutputConstraint | None) -> None:
        """`InvalidRequest` (param: the constraint's request field) if it does not compile
        within the bound."""
        if constraint is None:
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, self.compile, constraint)
        try:
            async with asyncio.timeout(self._timeout_s):  # (asyncio.wait_for may drop a cancel)
                seconds = await future
        except TimeoutError as exc:
            raise InvalidRequest(
                f"The {constraint.param} schema took longer than {self._timeout_s:g}s to "
                "compile into a grammar; simplify it.",
                param=constraint.param,
            ) from exc
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise InvalidRequest(
                f"The {constraint.param} constraint cannot be compiled: {_first_line(exc)}",
                param=constraint.param,
            ) from exc
        _log.debug("compiled a %s constraint in %.3fs", constraint.kind, seconds)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _structural_tag(spec: str) -> tuple[list[Any], list[str]]:
    """vLLM's structural-tag JSON ({"structures": [...], "triggers": [...]}) as xgrammar
    takes it, the way vLLM's xgrammar backend reads it."""
    import xgrammar as xgr

    tag = json.loads(spec)
    items = [
        xgr.StructuralTagItem(begin=s["begin"], schema=json.dumps(s["schema"]), end=s["end"])
        for s in tag["structures"]
    ]
    return items, list(tag["triggers"])


def _regex_literal(text: str) -> str:
    return "".join(f"\\{c}" if c in r"\.^$|?*+()[]{}/" else c for c in text)


def _first_line(exc: BaseException) -> str:
    """xgrammar's message without its "[time] file.cc:line: " prefix."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", text)[:300]
