"""Our language path (converted weights → prompt embeds → vLLM) against the
reference PandaGPT (unconverted sources, transformers + peft), fp32 on CPU.

Two claims: (1) our prompt embeddings equal the reference `inputs_embeds`
(≤ 1e-6), and (2) greedy generation gives the same token ids, for the merged
conversion and for `--keep-lora` (vLLM LoRA serving). Media features are
seeded random stand-ins for ImageBind outputs: this proves the language side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from reference.pandagpt import ReferencePandaGPT
from service.config import Settings
from service.contract import SamplingSettings
from service.worker.engine import LLMEngine
from service.worker.projector import Projector
from service.worker.prompt import Conversation, PromptBuilder, Turn, load_embed_tokens
from tests.parity.conftest import ParityWeights
from tests.utils.json_choices import assert_choices_validate, enum_count_tags_schema, sampled_json

MAX_TOKENS = 32
OUT_DIM = 32  # the tiny demo ImageBind's embedding size


def feature(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(OUT_DIM, generator=g), dim=0)


def video_feature(seed: int) -> torch.Tensor:
    # PandaGPT's video feature: mean over clips × crops of L2-normed vision outputs.
    g = torch.Generator().manual_seed(seed)
    clips = torch.nn.functional.normalize(torch.randn(15, OUT_DIM, generator=g), dim=-1)
    return clips.mean(dim=0)


@dataclass(frozen=True)
class Case:
    name: str
    question: str
    turns: list[tuple[str, str]] = field(default_factory=list)
    features: list[torch.Tensor] = field(default_factory=list)
    system: str | None = None

    def conversation(self) -> Conversation:
        msgs: list[Turn] = []
        for q, a in self.turns:
            msgs += [Turn("user", q), Turn("assistant", a)]
        return Conversation([*msgs, Turn("user", self.question)], system=self.system)


CASES = [
    Case("image", "What is in this image?", features=[feature(1)]),
    Case("image+audio", "Describe the picture and the sound.", features=[feature(2), feature(3)]),
    Case("video", "What happens in the video?", features=[video_feature(4)]),
    Case(
        "multi-turn",
        "Where is it going?",
        turns=[("What is in this image?", "A dog in a park."), ("What colour?", "Brown.")],
        features=[feature(5)],
    ),
    Case("text-only", "Tell me a story about a cat."),
    Case("system", "What is this?", features=[feature(6)], system="You are a helpful assistant."),
]


FIXTURE_MEDIA = Path(__file__).resolve().parents[1] / "fixtures" / "media"


@pytest.fixture(scope="module")
def cases(parity_weights: ParityWeights) -> list[Case]:
    """CASES plus one with real encoder features (demo ImageBind on fixture media)."""
    from encoders.imagebind.checkpoint import load_imagebind
    from encoders.media import preprocess

    model = load_imagebind(parity_weights.merged / "imagebind.safetensors")
    inputs = {
        "vision": preprocess("image", (FIXTURE_MEDIA / "dog_image.jpg").read_bytes()),
        "audio": preprocess("audio", (FIXTURE_MEDIA / "dog_audio.wav").read_bytes()),
    }
    with torch.no_grad():
        feats = model.pandagpt_features(inputs)
    real = Case(
        "encoded image+audio",
        "What do you see and hear?",
        features=[feats["vision"][0], feats["audio"][0]],
    )
    return [*CASES, real]


@pytest.fixture(scope="module")
def reference(parity_weights: ParityWeights) -> ReferencePandaGPT:
    return ReferencePandaGPT(parity_weights.paths.vicuna, parity_weights.delta)


def ours(model_dir: Path) -> tuple[PromptBuilder, Projector]:
    llm = model_dir / "llm"
    tok = AutoTokenizer.from_pretrained(str(llm))
    builder = PromptBuilder(tok, load_embed_tokens(llm, "cpu", torch.float32))
    return builder, Projector.load(model_dir / "projector.safetensors", "cpu", torch.float32)


def our_embeds(model_dir: Path, case: Case) -> torch.Tensor:
    builder, projector = ours(model_dir)
    return builder.build(case.conversation(), projector.soft_token(case.features)).embeds


@pytest.mark.parametrize("mode", ["merged", "lora"])
def test_prompt_embeds_equal_reference(parity_weights, reference, cases, mode: str) -> None:
    model_dir = parity_weights.merged if mode == "merged" else parity_weights.lora
    worst = 0.0
    for case in cases:
        ref = reference.inputs_embeds(case.question, case.turns, case.features, case.system)[0]
        mine = our_embeds(model_dir, case)
        assert mine.shape == ref.shape, case.name
        worst = max(worst, (mine - ref).abs().max().item())
    print(f"\n[{mode}] prompt embeds max |diff| over {len(cases)} conversations: {worst:.3g}")
    assert worst <= 1e-6


@pytest.fixture(scope="module", params=["merged", "lora"])
def engine(request, parity_weights: ParityWeights):
    model_dir = parity_weights.merged if request.param == "merged" else parity_weights.lora
    settings = Settings(
        dtype="float32",
        max_model_len=512,
        max_num_seqs=8,
        cpu_kvcache_space_gib=0.25,
        enforce_eager=True,
    )
    eng = LLMEngine.start(settings, model_dir)
    # AsyncLLM binds its output handler to the loop of its first request: every
    # test of this engine runs on this one loop. Closing the runner cancels that
    # handler (as asyncio.run would), which lets the engine's sockets close.
    runner = asyncio.Runner()
    yield request.param, model_dir, eng, runner
    runner.close()
    eng.shutdown()


async def collect(eng: LLMEngine, embeds: torch.Tensor, request_id: str) -> list[int]:
    ids: list[int] = []
    async for delta in eng.generate(
        embeds, SamplingSettings(max_tokens=MAX_TOKENS, temperature=0.0), request_id
    ):
        ids += delta.token_ids
    return ids


@pytest.mark.slow
def test_greedy_tokens_equal_reference(engine, reference, cases) -> None:
    mode, model_dir, eng, runner = engine
    if mode == "lora":
        assert eng.served_model_names == ["pandagpt-demo-tiny"]

    async def run_all() -> list[list[int]]:
        # Concurrent requests: vLLM batches them, as in service.
        jobs = [collect(eng, our_embeds(model_dir, case), f"{mode}-{case.name}") for case in cases]
        return list(await asyncio.gather(*jobs))

    got = runner.run(run_all())
    equal = 0
    report = []
    for case, mine in zip(cases, got, strict=True):
        ref_embeds = reference.inputs_embeds(case.question, case.turns, case.features, case.system)
        expected = reference.generate_ids(ref_embeds, MAX_TOKENS)
        equal += mine == expected
        report.append(f"{case.name}: {'same' if mine == expected else 'DIFF'} ({len(mine)} tokens)")
    print(f"\n[{mode}] greedy token ids equal: {equal}/{len(cases)}; " + "; ".join(report))
    assert equal == len(cases), report
    # The demo LLM must not be degenerate: long answers use many distinct tokens.
    assert all(len(set(ids)) >= 8 for ids in got if len(ids) >= 16)


@pytest.mark.slow
def test_prefill_beside_other_decodes_keeps_the_engine_alive(engine, cases) -> None:
    """A prompt-embeds prefill scheduled beside two other requests' token decodes.

    In LoRA mode this step crashed vLLM's engine (issue #51122) while its LoRA
    also wrapped embed_tokens: the LoRA indices cover every token of the step,
    the embedding only the decode rows (one row would broadcast silently, so
    two decode and one prefill). The last request starts once the others have
    streamed a token, so the mixed step is certain, not a race.
    """
    mode, model_dir, eng, runner = engine
    embeds = [our_embeds(model_dir, case) for case in cases[:3]]
    sampling = SamplingSettings(max_tokens=48, temperature=0.0, ignore_eos=True)

    async def run() -> list[int]:
        decoding = [asyncio.Event(), asyncio.Event()]

        async def generate(i: int, wait_for: list[asyncio.Event]) -> int:
            for event in wait_for:
                await event.wait()
            count = 0
            async for delta in eng.generate(embeds[i], sampling, f"{mode}-mixed-{i}"):
                count += len(delta.token_ids)
                if i < len(decoding):
                    decoding[i].set()
            return count

        return list(await asyncio.gather(generate(0, []), generate(1, []), generate(2, decoding)))

    assert runner.run(run()) == [48, 48, 48]


@pytest.mark.slow
def test_json_schema_holds_merged_and_with_the_lora_served_by_vllm(engine, cases) -> None:
    """Structured outputs on prompt embeddings in both weight modes: random weights
    write schema-valid JSON only because the grammar masks every step."""
    mode, model_dir, eng, runner = engine
    schema = enum_count_tags_schema(["cat", "dog"], max_count=9, max_tags=2)
    sampling = sampled_json(schema, n=2, seed=5)

    async def run() -> list:
        embeds = our_embeds(model_dir, cases[0])
        return [delta async for delta in eng.generate(embeds, sampling, f"{mode}-json")]

    deltas = runner.run(run())
    assert_choices_validate(deltas, 2, schema)
