"""`pandagpt demo-weights`: a tiny, seeded, random PandaGPT in the released formats.

It writes what a user would download (`DIR/sources/`: a Vicuna-style HF dir
whose config has the v0 quirk bos 0 / eos 1, a delta `pytorch_model.pt` with
the released key names and a non-zero LoRA B, an ImageBind `.pth` with the
upstream key names) and then runs the real `convert` on it (`DIR/model/`).
So demos, tests and CI exercise the same conversion path as the 7B/13B
weights. Initial scales are chosen so that greedy text varies: at the usual
0.02 std a 2-layer model's logits are nearly flat and greedy decoding repeats.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from service.weights.convert import convert
from service.weights.layout import LORA_RANK, LORA_TARGETS, Manifest, ModelLayout
from service.weights.tokenizer import train_demo_tokenizer

# ImageBind towers for the tiny demo (the tiny fixture's constructor args).
_IMAGEBIND_TINY: dict[str, Any] = {
    "video_frames": 2,
    "kernel_size": [2, 14, 14],
    "audio_kernel_size": 16,
    "audio_stride": 10,
    "audio_num_mel_bins": 128,
    "audio_target_len": 204,
    "depth_kernel_size": 16,
    "thermal_kernel_size": 16,
    "imu_kernel_size": 8,
    "audio_drop_path": 0.1,
    "depth_drop_path": 0.0,
    "thermal_drop_path": 0.0,
    "imu_drop_path": 0.7,
    "out_embed_dim": 32,
    "vision_embed_dim": 64,
    "vision_num_blocks": 2,
    "vision_num_heads": 4,
    "text_embed_dim": 32,
    "text_num_blocks": 2,
    "text_num_heads": 2,
    "audio_embed_dim": 48,
    "audio_num_blocks": 2,
    "audio_num_heads": 4,
    "depth_embed_dim": 32,
    "depth_num_blocks": 2,
    "depth_num_heads": 2,
    "thermal_embed_dim": 48,
    "thermal_num_blocks": 2,
    "thermal_num_heads": 3,
    "imu_embed_dim": 32,
    "imu_num_blocks": 2,
    "imu_num_heads": 4,
}
_IMAGEBIND_SMALL = {
    **_IMAGEBIND_TINY,
    "out_embed_dim": 64,
    "vision_embed_dim": 128,
    "text_embed_dim": 64,
    "audio_embed_dim": 96,
    "depth_embed_dim": 64,
    "thermal_embed_dim": 96,
    "imu_embed_dim": 64,
}


@dataclass(frozen=True)
class DemoSize:
    hidden: int
    layers: int
    heads: int  # head_dim = hidden / heads must be >= 32 for vLLM's CPU attention
    intermediate: int
    imagebind: dict[str, Any]


SIZES = {
    "tiny": DemoSize(128, 2, 4, 344, _IMAGEBIND_TINY),
    "small": DemoSize(512, 4, 8, 1376, _IMAGEBIND_SMALL),
}


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def vicuna(self) -> Path:
        return self.sources / "vicuna"

    def delta(self, size: str) -> Path:
        return self.sources / f"pandagpt-demo-{size}" / "pytorch_model.pt"

    @property
    def imagebind(self) -> Path:
        return self.sources / "imagebind.pth"

    @property
    def imagebind_config(self) -> Path:
        return self.sources / "imagebind_config.json"

    @property
    def model(self) -> Path:
        return self.root / "model"


def _normal(gen: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    return torch.randn(shape, generator=gen) * std


def make_vicuna(out_dir: Path, size: DemoSize, gen: torch.Generator) -> int:
    """A random Llama HF dir (safetensors) plus a trained tokenizer; returns vocab size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = train_demo_tokenizer(out_dir).get_vocab_size()
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        # Vicuna v0's config.json says 0/1; `convert` must take 1/2 from the tokenizer.
        bos_token_id=0,
        eos_token_id=1,
        dtype="float32",
    )
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    h = size.hidden
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                continue  # RMSNorm gains stay 1
            if "embed_tokens" in name:
                param.copy_(_normal(gen, tuple(param.shape), 1.0))
            elif "lm_head" in name:
                # logits std ≈ 4: a clear argmax, so greedy paths are robust to fp noise
                param.copy_(_normal(gen, tuple(param.shape), 4.0 / h**0.5))
                # Byte-fallback pieces (ids 3..258) rarely win, so demo text is
                # readable words rather than stray UTF-8 fragments.
                param[3:259] *= 0.25
            else:
                # 1.5/sqrt(fan_in): layers change the residual stream, so context matters
                param.copy_(_normal(gen, tuple(param.shape), 1.5 / param.shape[1] ** 0.5))
    model.save_pretrained(str(out_dir))
    return vocab


def make_delta(path: Path, size: DemoSize, gen: torch.Generator) -> None:
    """Released delta key names, including the `.default` adapter segment."""
    h, out_dim = size.hidden, int(size.imagebind["out_embed_dim"])
    state: dict[str, torch.Tensor] = {
        # Features are L2-normalised (entries ~1/sqrt(out_dim)); this gives a
        # soft token on the scale of the token embeddings (std 1).
        "llama_proj.weight": _normal(gen, (h, out_dim), 1.0),
        "llama_proj.bias": _normal(gen, (h,), 0.1),
    }
    for layer in range(size.layers):
        for proj in LORA_TARGETS:
            prefix = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{proj}"
            state[f"{prefix}.lora_A.default.weight"] = _normal(gen, (LORA_RANK, h), h**-0.5)
            # B is zero at PandaGPT's init; after training it is not, so make it matter.
            state[f"{prefix}.lora_B.default.weight"] = _normal(gen, (h, LORA_RANK), 0.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def make_imagebind(pth: Path, config_json: Path, size_name: str, seed: int) -> None:
    """A random ImageBind `.pth` with the upstream key names, plus its constructor kwargs."""
    from encoders.imagebind.config import ImageBindConfig
    from encoders.imagebind.model import ImageBindModel

    kwargs = SIZES[size_name].imagebind
    torch.manual_seed(seed)  # the towers draw their init from the global generator
    state = ImageBindModel(ImageBindConfig(**kwargs)).state_dict()
    torch.save({k: v.contiguous() for k, v in state.items()}, pth)
    config_json.write_text(json.dumps({"constructor_args": kwargs}, indent=2) + "\n")


def demo_marker(seed: int, size: str) -> dict[str, Any]:
    return {"seed": seed, "size": size}


def is_current(model_dir: Path, seed: int, size: str) -> bool:
    manifest_path = ModelLayout(model_dir).manifest
    if not manifest_path.exists():
        return False
    return Manifest.load(manifest_path).extra.get("demo") == demo_marker(seed, size)


def make_demo_weights(root: Path, seed: int = 0, size: str = "tiny") -> Path:
    """Make sources and the converted model under root; return the model dir."""
    paths = DemoPaths(root)
    if is_current(paths.model, seed, size):
        return paths.model
    spec = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    paths.sources.mkdir(parents=True, exist_ok=True)
    make_vicuna(paths.vicuna, spec, gen)
    make_delta(paths.delta(size), spec, gen)
    make_imagebind(paths.imagebind, paths.imagebind_config, size, seed)
    manifest = convert(
        paths.vicuna,
        paths.delta(size),
        paths.imagebind,
        paths.model,
        imagebind_config=paths.imagebind_config,
    )
    manifest.extra["demo"] = demo_marker(seed, size)
    manifest.save(ModelLayout(paths.model).manifest)
    return paths.model


def run_demo_weights_cli(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    model_dir = make_demo_weights(args.dir, seed=args.seed, size=args.size)
    print(f"demo weights in {model_dir} ({time.perf_counter() - start:.1f} s)")
    return 0
