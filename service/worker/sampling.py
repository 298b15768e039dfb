"""A job's sampling settings as vLLM takes them, and the stop-text rules.

Precedence is request → server default → reference default. The gateway
applies the first two (`Settings.default_*`, in `ChatCompletionRequest.to_sampling`)
and leaves the rest None; this module fills what is still None with PandaGPT's
reference: its demo ran top_p 0.01, temperature 1.0 and 256 new tokens, so a
request that names nothing on an unconfigured server gets what PandaGPT gave.

`###` (the next turn marker) is always a stop string, and no part of a stop
string ever reaches the client: while streaming, text that could be the start
of a stop string is held back until it is decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.contract import OutputConstraint, SamplingSettings

TURN_STOP = "###"
DEFAULT_TOP_P = 0.01
DEFAULT_TEMPERATURE = 1.0
DEFAULT_MAX_TOKENS = 256


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def turn_stop_applies(sampling: SamplingSettings) -> bool:
    """`###` ends a reply, except for fixed-length benchmarks and under a grammar
    constraint (that only ends where the output is complete; a `###` inside a JSON
    string must not cut it). "auto" tool calls (a structural tag) keep it: free text."""
    constraint = sampling.constraint
    grammar_ends = constraint is not None and constraint.kind != "structural_tag"
    return not (sampling.ignore_eos or grammar_ends)


def stop_strings(sampling: SamplingSettings) -> list[str]:
    """User stops plus `###` (where it applies), de-duplicated, order kept."""
    turn_stop = [TURN_STOP] if turn_stop_applies(sampling) else []
    return list(dict.fromkeys([*(s for s in sampling.stop if s), *turn_stop]))


def structured_outputs(constraint: OutputConstraint | None) -> Any:
    """`vllm.sampling_params.StructuredOutputsParams` for a job's constraint, or None."""
    if constraint is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if constraint.kind == "json_object":
        return StructuredOutputsParams(json_object=True)
    if constraint.kind == "json_schema":
        return StructuredOutputsParams(json=constraint.json_schema)
    if constraint.kind == "regex":
        return StructuredOutputsParams(regex=constraint.regex)
    if constraint.kind == "choice":
        return StructuredOutputsParams(choice=constraint.choice)
    return StructuredOutputsParams(structural_tag=constraint.structural_tag)


def vllm_sampling_params(sampling: SamplingSettings) -> Any:
    """`vllm.SamplingParams` for a job; unset fields get PandaGPT's reference defaults
    (the gateway has already put the server's defaults in)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        n=sampling.n,
        max_tokens=_first(sampling.max_tokens, DEFAULT_MAX_TOKENS),
        temperature=_first(sampling.temperature, DEFAULT_TEMPERATURE),
        top_p=_first(sampling.top_p, DEFAULT_TOP_P),
        top_k=_first(sampling.top_k, 0),  # 0 and -1 both mean "no top-k" in vLLM
        seed=sampling.seed,
        stop=stop_strings(sampling),
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        ignore_eos=sampling.ignore_eos,
        logprobs=sampling.logprobs,
        structured_outputs=structured_outputs(sampling.constraint),
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

    def __init__(self, stops: Sequence[str], turn_stop: bool = True) -> None:
        self.stops = list(stops)
        self.turn_stop = turn_stop  # False under a grammar: a trailing "#" is output
        self.sent = 0  # characters of the cumulative text already sent

    def delta(self, text: str, finished: bool) -> str:
        if finished:
            # The engine already cut a matched stop string. A dangling start of
            # the turn marker ("#", "##") at the end (length cut, or EOS) is the
            # model beginning "###": it is never sent. A user stop's prefix is.
            end = len(text) - partial_stop_len(text, [TURN_STOP] if self.turn_stop else [])
        else:
            end = len(text) - partial_stop_len(text, self.stops)
        end = max(end, self.sent)
        out, self.sent = text[self.sent : end], end
        return out
