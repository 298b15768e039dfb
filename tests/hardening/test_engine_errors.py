"""vLLM's context-length refusals become ContextLengthExceeded (400, param messages)."""

from __future__ import annotations

import pytest
from vllm.exceptions import VLLMValidationError

from service.errors import ContextLengthExceeded, error_spec
from service.worker.model_worker import engine_error

RENDERER = VLLMValidationError(
    "This model's maximum context length is 1024 tokens. However, your prompt contains "
    "3068 input tokens, which exceeds this limit even without any output tokens.",
    parameter="input_tokens",
    value=3068,
)
ENGINE = VLLMValidationError(
    "The decoder prompt (length 3068) is longer than the maximum model length of 1024."
)


@pytest.mark.parametrize("exc", [RENDERER, ENGINE], ids=["renderer", "engine"])
def test_prompt_over_the_context_is_context_length_exceeded(exc: VLLMValidationError) -> None:
    error = engine_error(exc, "req-1")
    assert isinstance(error, ContextLengthExceeded)
    spec = error_spec(error)
    assert (spec.status, spec.param, spec.code) == (400, "messages", "context_length_exceeded")
    assert "1024" in spec.message  # the limit is named
