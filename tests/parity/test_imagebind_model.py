"""Stage-by-stage parity of ImageBindModel with the reference tiny model (fp32, CPU).

Fixtures: tests/fixtures/imagebind/{tiny_weights,tiny_io}.safetensors (README §2).
Criterion: max|got − ref| ≤ 2e-5 · max|ref| per tensor (≥ 10× the float32 noise).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imagebind"
REL_TOL = 2e-5
CASES = ("vision", "vision_video", "text", "audio", "depth", "thermal", "imu")
STAGES = ("trunk_in", "trunk_out", "head", "upstream")


def regenerate_inputs(io: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `*.input` tensors (removed from our copy) drawn exactly as the reference did."""
    g = torch.Generator().manual_seed(4242)
    return {
        "vision": torch.randn(2, 3, 224, 224, generator=g),
        "vision_video": torch.randn(2, 3, 3, 2, 224, 224, generator=g),
        "text": io["text.input"],
        "audio": torch.randn(2, 3, 1, 128, 204, generator=g),
        "depth": torch.randn(2, 1, 224, 224, generator=g),
        "thermal": torch.rand(2, 1, 224, 224, generator=g),
        "imu": torch.randn(2, 6, 2000, generator=g),
    }


def assert_close(got: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert got.shape == ref.shape, f"{what}: shape {list(got.shape)} != {list(ref.shape)}"
    diff = (got.double() - ref.double()).abs()
    bound = REL_TOL * ref.abs().max().item()
    assert diff.max().item() <= bound, (
        f"{what}: max|diff| {diff.max().item():.3e} > {bound:.3e} "
        f"(mean {diff.mean().item():.3e}, max|ref| {ref.abs().max().item():.3e})"
    )


@pytest.fixture(scope="module")
def tiny() -> tuple[ImageBindModel, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    args = json.loads((FIXTURES / "tiny_config.json").read_text())["constructor_args"]
    model = ImageBindModel(ImageBindConfig(**args)).eval()
    model.load_state_dict(load_file(FIXTURES / "tiny_weights.safetensors"), strict=True)
    io = load_file(FIXTURES / "tiny_io.safetensors")
    return model, io, regenerate_inputs(io)


def run_stages(model: ImageBindModel, modality: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    flat, num_clips = model.split_clips(modality, x)
    trunk_in = model.embed_tokens(modality, flat)
    trunk_out = model.run_trunk(modality, trunk_in)
    head = model.run_head(modality, trunk_out, flat if modality == "text" else None)
    upstream = model.postprocess(modality, head, num_clips)
    return {"trunk_in": trunk_in, "trunk_out": trunk_out, "head": head, "upstream": upstream}


@pytest.mark.parametrize("case", CASES)
def test_stages_match_reference(tiny, case: str) -> None:
    model, io, inputs = tiny
    modality = "vision" if case.startswith("vision") else case
    with torch.inference_mode():
        got = run_stages(model, modality, inputs[case])
    for stage in STAGES:
        assert_close(got[stage], io[f"{case}.{stage}"], f"{case}.{stage}")


@pytest.mark.parametrize("case", CASES)
def test_forward_is_upstream_output(tiny, case: str) -> None:
    model, io, inputs = tiny
    modality = "vision" if case.startswith("vision") else case
    with torch.inference_mode():
        out = model({modality: inputs[case]})[modality]
        heads = model.head_outputs({modality: inputs[case]})[modality]
    assert_close(out, io[f"{case}.upstream"], f"{case}.forward")
    assert_close(heads, io[f"{case}.head"], f"{case}.head_outputs")


def test_pandagpt_features(tiny) -> None:
    model, io, inputs = tiny
    media = {c: inputs[c] for c in ("vision", "audio", "depth", "thermal", "imu")}
    with torch.inference_mode():
        feats = model.pandagpt_features(media)
        video = model.pandagpt_features({"vision": inputs["vision_video"]})["vision"]
    assert_close(feats["audio"], io["audio.pandagpt"], "audio.pandagpt")
    for case in ("vision", "depth", "thermal", "imu"):  # identical to upstream (README §2)
        assert_close(feats[case], io[f"{case}.upstream"], f"{case}.pandagpt")
    assert_close(video, io["vision_video.upstream"], "vision_video.pandagpt")
    assert torch.allclose(feats["vision"].norm(dim=-1), torch.ones(2))


def test_text_pools_at_eot(tiny) -> None:
    _, io, _ = tiny
    assert io["text.input"].argmax(dim=-1).tolist() == io["text.seq_len"].tolist()


def test_logit_scales_read_from_weights(tiny) -> None:
    model, _, _ = tiny
    scales = json.loads((FIXTURES / "tiny_config.json").read_text())[
        "logit_scales_after_perturbation"
    ]
    for key, entry in scales.items():
        modality = key.split(".")[1]
        got = model.logit_scale(modality).item()
        assert got == pytest.approx(entry["effective_scale_after_clip_at_100"], rel=1e-6), key
    assert model.logit_scale("vision") is None


def test_math_attention_matches_sdpa(tiny) -> None:
    model, _, inputs = tiny
    config = ImageBindConfig.from_dict({**model.config.to_dict(), "attn_implementation": "math"})
    math_model = ImageBindModel(config).eval()
    math_model.load_state_dict(model.state_dict(), strict=True)
    with torch.inference_mode():
        for case in ("audio", "text"):  # bias_kv path and causal path
            modality = case
            assert_close(
                math_model({modality: inputs[case]})[modality],
                model({modality: inputs[case]})[modality],
                f"{case} math vs sdpa",
            )


# Observed on CPU: fp16 ≤ 1.3e-3, bf16 ≤ 1.2e-2 relative max difference.
HALF_TOL = {torch.float16: 5e-3, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_runs(tiny, dtype: torch.dtype) -> None:
    model, io, inputs = tiny
    half = ImageBindModel(model.config).eval()
    half.load_state_dict(model.state_dict(), strict=True)
    half.to(dtype)
    assert half.modality_postprocessors["thermal"][1].log_logit_scale.dtype == torch.float32
    with torch.inference_mode():
        for case in CASES:
            modality = "vision" if case.startswith("vision") else case
            out = half({modality: inputs[case]})[modality]
            ref = io[f"{case}.upstream"]
            assert out.dtype == torch.float32
            err = (out - ref).abs().max().item() / ref.abs().max().item()
            assert err < HALF_TOL[dtype], f"{case} {dtype}: relative max diff {err:.3e}"


def test_five_dim_vision_is_refused(tiny) -> None:
    model, _, _ = tiny
    with pytest.raises(ValueError, match="5-D vision"):
        model({"vision": torch.zeros(1, 3, 2, 224, 224)})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("dtype", "rel_tol"),
    [(torch.float32, 2e-4), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)],
)
def test_cuda_matches_reference(tiny, dtype: torch.dtype, rel_tol: float, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 stems exact-ish
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model, io, inputs = tiny
    gpu = ImageBindModel(model.config).eval()
    gpu.load_state_dict(model.state_dict(), strict=True)
    gpu.to(device="cuda", dtype=dtype)
    with torch.inference_mode():
        for case in CASES:
            modality = "vision" if case.startswith("vision") else case
            out = gpu({modality: inputs[case].cuda()})[modality].cpu()
            ref = io[f"{case}.upstream"]
            diff = (out - ref).abs()
            assert diff.max().item() <= rel_tol * ref.abs().max().item(), (
                f"{case} {dtype}: max {diff.max().item():.3e} mean {diff.mean().item():.3e}"
            )
