from __future__ import annotations

import pytest

from service.contract import SamplingSettings
from service.worker.sampling import (
    StopHoldback,
    partial_stop_len,
    stop_strings,
    vllm_sampling_params,
)


def test_reference_defaults_and_turn_stop() -> None:
    params = vllm_sampling_params(SamplingSettings())
    assert (params.top_p, params.temperature, params.max_tokens) == (0.01, 1.0, 256)
    assert params.stop == ["###"]


def test_job_values_beat_the_reference() -> None:
    # Server defaults are already in the job: the gateway put them there (test_api_chat).
    params = vllm_sampling_params(
        SamplingSettings(max_tokens=8, temperature=0.5, stop=["END", "###"])
    )
    assert (params.max_tokens, params.temperature, params.top_p) == (8, 0.5, 0.01)
    assert params.stop == ["END", "###"]


def test_other_parameters_pass_through() -> None:
    wire = SamplingSettings(n=3, seed=7, top_k=5, presence_penalty=0.5, frequency_penalty=0.25)
    p = vllm_sampling_params(wire)
    assert (p.n, p.seed, p.top_k, p.presence_penalty, p.frequency_penalty) == (3, 7, 5, 0.5, 0.25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("hello", 0), ("hello #", 1), ("hello ##", 2), ("hello #x", 0), ("a#b", 0), ("", 0)],
)
def test_partial_stop_len(text: str, expected: int) -> None:
    assert partial_stop_len(text, ["###"]) == expected


def test_holdback_never_sends_a_stop_prefix() -> None:
    hold = StopHoldback(["###"])
    sent = [
        hold.delta("Hello", False),
        hold.delta("Hello #", False),
        hold.delta("Hello ##", False),
        hold.delta("Hello ## x", False),  # not a stop after all: released
        hold.delta("Hello ## x", True),
    ]
    assert sent == ["Hello", " ", "", "## x", ""]


def test_holdback_drops_a_dangling_turn_marker_at_the_end() -> None:
    hold = StopHoldback(["###"])
    assert hold.delta("Sure ##", False) == "Sure "
    assert hold.delta("Sure ##", True) == ""


def test_user_stop_prefix_is_released_at_the_end() -> None:
    hold = StopHoldback(["END", "###"])
    assert hold.delta("the E", False) == "the "
    assert hold.delta("the E", True) == "E"


def test_ignore_eos_drops_the_turn_stop() -> None:
    wire = SamplingSettings(max_tokens=5, top_k=3, n=2, seed=9, stop=["x"], ignore_eos=True)
    assert stop_strings(wire) == ["x"]  # ignore_eos: no `###`
    assert vllm_sampling_params(wire).stop == ["x"]


def test_token_logprob_orders_by_rank_and_clamps_minus_infinity() -> None:
    from vllm.logprobs import Logprob

    from service.worker.engine import MIN_LOGPROB, token_logprob

    # vLLM's position dict: the sampled token (here rank 5, outside the top 2) plus the top-k.
    position = {
        7: Logprob(float("-inf"), rank=5, decoded_token="z"),
        3: Logprob(-0.5, rank=2, decoded_token="b"),
        1: Logprob(-0.1, rank=1, decoded_token="a"),
    }
    got = token_logprob(7, position, top=2)
    assert (got.token, got.logprob) == ("z", MIN_LOGPROB)
    assert [(t.token, t.logprob) for t in got.top_logprobs] == [("a", -0.1), ("b", -0.5)]
    assert token_logprob(1, position, top=0).top_logprobs == []
