"""Sampling settings and the stop-text rules shared by every request.

Precedence is request → server default (`Settings.default_*`) → reference
default: PandaGPT's demo ran top_p 0.01, temperature 1.0 and 256 new tokens,
so a request that names nothing on an unconfigured server gets what PandaGPT
gave. `###` (the next turn marker) is always a stop string, and no
part of a stop string ever reaches the client: while streaming, text that
could be the start of a stop string is held back until it is decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.worker.protocol import SamplingSettings

TURN_STOP = "###"
DEFAULT_TOP_P = 0.01
DEFAULT_TEMPERATURE = 1.0
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class SamplingDefaults:
    """Server-wide defaults; None falls through to the reference default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> SamplingDefaults:
        return cls(
            max_tokens=getattr(settings, "default_max_tokens", None),
            temperature=getattr(settings, "default_temperature", None),
            top_p=getattr(settings, "default_top_p", None),
            top_k=getattr(settings, "default_top_k", None),
        )


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


class Sampling(SamplingSettings):
    """A request's `SamplingSettings` (same fields) with what the engine makes of them."""

    @property
    def stop_strings(self) -> list[str]:
        """User stops plus `###` (unless ignore_eos), de-duplicated, order kept."""
        turn_stop = [] if self.ignore_eos else [TURN_STOP]
        return list(dict.fromkeys([*(s for s in self.stop if s), *turn_stop]))

    def to_vllm(self, defaults: SamplingDefaults | None = None) -> Any:
        """vllm.SamplingParams (imported lazily: the gateway has no vLLM)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        d = defaults or SamplingDefaults()
        return SamplingParams(
            n=self.n,
            max_tokens=_first(self.max_tokens, d.max_tokens, DEFAULT_MAX_TOKENS),
            temperature=_first(self.temperature, d.temperature, DEFAULT_TEMPERATURE),
            top_p=_first(self.top_p, d.top_p, DEFAULT_TOP_P),
            # 0 and -1 both mean "no top-k" in vLLM
            top_k=_first(self.top_k, d.top_k, 0),
            seed=self.seed,
            stop=self.stop_strings,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            ignore_eos=self.ignore_eos,
            logprobs=self.logprobs,
            # Cumulative text lets StopHoldback decide what is safe to send.
            output_kind=RequestOutputKind.CUMULATIVE,
        )


def partial_stop_len(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


class StopHoldback:
    """Turns cumulative text into safe deltas for one completion."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = list(stops)
        self.sent = 0  # characters of the cumulative text already sent

    def delta(self, text: str, finished: bool) -> str:
        if finished:
            # The engine already cut a matched stop string. A dangling start of
            # the turn marker ("#", "##") at the end (length cut, or EOS) is the
            # model beginning "###": it is never sent. A user stop's prefix is.
            end = len(text) - partial_stop_len(text, [TURN_STOP])
        else:
            end = len(text) - partial_stop_len(text, self.stops)
        end = max(end, self.sent)
        out, self.sent = text[self.sent : end], end
        return out
