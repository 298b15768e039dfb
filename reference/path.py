"""The reference path: PandaGPT's original inference, one request at a time.

What the original demo did per request, on the UNCONVERTED demo sources:
decode and preprocess each media item the way the original did
(`reference.media`: every video frame decoded, FFmpeg's default probing,
Pillow + bicubic; the same tensors as the service's exact preprocessing, so
this path keeps the original's media cost as the service's gets faster),
run ImageBind in PyTorch eager at
batch 1 (our `encoders` ImageBind loading the source `.pth`: the same weights
and, per the parity tests, the same features as upstream), project and sum
into the soft token, concatenate the prompt embeddings and call
transformers + peft `generate(inputs_embeds=…)` with the LoRA unmerged
(`reference.pandagpt.ReferencePandaGPT`). No cache, no batching.

Synchronous and single-threaded, as the demo's one model served requests; the
benchmark queues concurrent clients in front of it (bench/reference_client.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from encoders.imagebind.checkpoint import load_imagebind
from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel
from encoders.micro_batcher import TOWERS
from reference.media import preprocess_upstream
from reference.pandagpt import ReferencePandaGPT, TimedIds


class ReferencePath:
    def __init__(self, sources: Path, delta: Path, max_tokens: int) -> None:
        """`sources`: the demo's `sources/` dir (vicuna/, imagebind.pth + its config)."""
        self.max_tokens = max_tokens
        self.llm = ReferencePandaGPT(sources / "vicuna", delta, dtype=torch.float32)
        # The demo writes ImageBind's constructor kwargs beside the `.pth`, as a user would.
        kwargs = json.loads((sources / "imagebind_config.json").read_text())["constructor_args"]
        self.imagebind: ImageBindModel = load_imagebind(
            sources / "imagebind.pth", ImageBindConfig(**kwargs)
        )

    @torch.no_grad()
    def feature(self, modality: str, data: bytes) -> torch.Tensor:
        """One item, batch 1: bytes → model input → PandaGPT feature `[out_dim]`."""
        x = preprocess_upstream(modality, data)  # [1, ...]
        tower = TOWERS[modality]  # video runs the vision tower on a 6-D input
        return self.imagebind.pandagpt_features({tower: x})[tower][0]

    def serve(
        self,
        question: str,
        turns: list[tuple[str, str]],
        media: Sequence[tuple[str, bytes]],
    ) -> TimedIds:
        """The whole request: `media` as (modality, bytes); exactly `max_tokens` ids, timed."""
        features = [self.feature(modality, data) for modality, data in media]
        embeds = self.llm.inputs_embeds(question, turns, features)
        return self.llm.generate_fixed(embeds, self.max_tokens)

    def decode(self, ids: list[int]) -> str:
        return str(self.llm.tokenizer.decode(ids, skip_special_tokens=True))
