"""LLMEngine on a real vLLM engine (tiny demo model, CPU, fp32): streaming,
finish reasons, usage, stop strings, n > 1, and abort when the caller goes away.
One engine for the module (start-up ≈ 20-40 s on this CPU)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from service.config import Settings
from service.contract import SamplingSettings
from service.worker.engine import GenerationDelta, LLMEngine
from service.worker.prompt import Conversation, PromptBuilder, Turn, load_embed_tokens
from tests.utils.json_choices import assert_choices_validate, enum_count_tags_schema, sampled_json

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def engine(demo_model: Path):
    settings = Settings(
        dtype="float32",
        max_model_len=512,
        max_num_seqs=8,
        cpu_kvcache_space_gib=0.25,
        enforce_eager=True,
    )
    eng = LLMEngine.start(settings, demo_model)
    yield eng
    eng.shutdown()


@pytest.fixture(scope="module")
def embeds(demo_model: Path) -> torch.Tensor:
    llm = demo_model / "llm"
    builder = PromptBuilder(
        AutoTokenizer.from_pretrained(str(llm)), load_embed_tokens(llm, "cpu", torch.float32)
    )
    return builder.build(Conversation([Turn("user", "Tell me a story about a cat.")]), None).embeds


async def run(
    eng: LLMEngine, embeds, sampling: SamplingSettings, rid: str
) -> list[GenerationDelta]:
    return [d async for d in eng.generate(embeds, sampling, rid)]


async def wait_idle(eng: LLMEngine, timeout: float = 5.0) -> int:
    for _ in range(int(timeout / 0.05)):
        if eng.num_unfinished_requests() == 0:
            return 0
        await asyncio.sleep(0.05)
    return eng.num_unfinished_requests()


async def test_stream_usage_and_length_finish(engine, embeds) -> None:
    deltas = await run(engine, embeds, SamplingSettings(max_tokens=8, temperature=0.0), "len")
    assert len(deltas) > 1, "deltas arrive token by token"
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    last = deltas[-1]
    assert last.finish_reason == "length"
    assert last.prompt_tokens == embeds.shape[0]
    assert last.completion_tokens == 8 == sum(len(d.token_ids) for d in deltas)


async def test_stop_string_is_cut_and_never_streamed(engine, embeds) -> None:
    greedy = SamplingSettings(max_tokens=32, temperature=0.0)
    full = "".join(d.text for d in await run(engine, embeds, greedy, "full"))
    # a stop string taken from the middle of the greedy text
    stop = next(
        full[i : i + 3]
        for i in range(8, len(full) - 3)
        if full[i : i + 3].strip() == full[i : i + 3]
    )
    cut = full[: full.index(stop)]
    stopped = SamplingSettings(max_tokens=32, temperature=0.0, stop=[stop])
    deltas = await run(engine, embeds, stopped, "stop")
    assert "".join(d.text for d in deltas) == cut
    assert deltas[-1].finish_reason == "stop"
    for d in deltas:
        assert stop not in d.text


async def test_n_completions_with_seed_repeat(engine, embeds) -> None:
    sampling = SamplingSettings(max_tokens=6, temperature=1.0, top_p=1.0, n=2, seed=11)

    async def texts(rid: str) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {0: [], 1: []}
        finished = set()
        for d in await run(engine, embeds, sampling, rid):
            out[d.index] += d.token_ids
            if d.finish_reason:
                finished.add(d.index)
        assert finished == {0, 1}
        return out

    assert await texts("n-a") == await texts("n-b")


async def test_penalties_are_accepted(engine, embeds) -> None:
    sampling = SamplingSettings(max_tokens=4, presence_penalty=1.0, frequency_penalty=0.5, top_k=5)
    deltas = await run(engine, embeds, sampling, "pen")
    assert deltas[-1].finish_reason in ("length", "stop")


# Runs to max_tokens whatever the demo model says: the request is still unfinished when the
# test looks, however early the greedy text would have reached `###` or EOS.
LONG = SamplingSettings(max_tokens=400, temperature=0.0, ignore_eos=True)


async def test_closing_the_stream_aborts_the_request(engine, embeds) -> None:
    stream = engine.generate(embeds, LONG, "gone")
    await anext(stream)
    assert engine.num_unfinished_requests() == 1
    await stream.aclose()  # the caller went away
    assert await wait_idle(engine) == 0


async def test_cancelling_a_stream_of_several_choices_aborts_every_one(engine, embeds) -> None:
    several = SamplingSettings(max_tokens=400, temperature=1.0, top_p=1.0, n=4, ignore_eos=True)
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.generate(embeds, several, "gone-n"):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    assert engine.num_unfinished_requests() >= 1
    task.cancel()  # the worker's pump task is cancelled when its caller leaves
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await wait_idle(engine) == 0  # all four choices stopped


async def test_cancelling_the_consumer_aborts_the_request(engine, embeds) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in engine.generate(embeds, LONG, "cx"):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    assert engine.num_unfinished_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_idle(engine) == 0


async def test_unknown_model_name(engine, embeds) -> None:
    with pytest.raises(KeyError):
        async for _ in engine.generate(
            embeds, SamplingSettings(max_tokens=2), "unk", lora_name="nope"
        ):
            pass


async def test_json_schema_constraint_holds_with_prompt_embeds(engine, embeds) -> None:
    """Random weights write JSON only because the grammar masks every step: each
    choice that ends with "stop" validates, and "###" never cuts it."""
    schema = enum_count_tags_schema(["a", "b"], max_count=50, max_tags=3)
    sampling = sampled_json(schema, n=3, seed=3)
    deltas = await run(engine, embeds, sampling, "json-1")
    assert_choices_validate(deltas, 3, schema)
