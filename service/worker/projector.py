"""`llama_proj`: ImageBind features → one soft token in the LLM's embedding space.

PandaGPT projects every media item of a conversation with the same Linear
and sums the projected vectors into a single soft token (so the bias is
counted once per item, as in the reference). The projector is loaded from
`projector.safetensors` of the converted model dir.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file


class Projector:
    """Holds llama_proj on the worker's device, in the engine's dtype."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(
                f"llama_proj weight {tuple(weight.shape)} and bias {tuple(bias.shape)} disagree"
            )
        self.weight = weight  # [hidden, out_dim]
        self.bias = bias  # [hidden]

    @classmethod
    def load(cls, path: Path, device: torch.device | str, dtype: torch.dtype) -> Projector:
        state = load_file(str(path))
        w = state["llama_proj.weight"].to(device=device, dtype=dtype)
        b = state["llama_proj.bias"].to(device=device, dtype=dtype)
        return cls(w, b)

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.weight.shape[0])

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """[N, out_dim] features → [N, hidden] projected items."""
        if features.ndim != 2 or features.shape[1] != self.in_dim:
            raise ValueError(
                f"features of shape {tuple(features.shape)}, llama_proj takes [N, {self.in_dim}]"
            )
        x = features.to(device=self.weight.device, dtype=self.weight.dtype)
        return torch.nn.functional.linear(x, self.weight, self.bias)

    def soft_token(self, features: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """Sum of the projected items ([hidden]); None for a text-only conversation."""
        if not features:
            return None
        # Each item [1, out_dim] → [1, hidden] on its own, then summed → [hidden]:
        # the reference's op shapes, so the sum is bit-identical to it (N is small).
        projected = [self.project(f.reshape(1, -1)) for f in features]
        return torch.cat(projected).sum(dim=0)
