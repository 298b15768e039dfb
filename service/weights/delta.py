"""Reading and checking a released PandaGPT delta (`pytorch_model.pt`).

The delta is a torch pickle of a flat state dict:
`llama_proj.{weight,bias}` and
`llama_model.base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}[.default].weight`
(the `.default` adapter segment depends on the peft version that saved it).
Every problem is a `DeltaError` naming the file and the key, so a user who
pairs a 7B delta with a 13B Vicuna learns which file is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from service.weights.layout import LORA_ALPHA, LORA_RANK, LORA_TARGETS

PROJ_WEIGHT = "llama_proj.weight"
PROJ_BIAS = "llama_proj.bias"
_LORA_KEY = re.compile(
    r"^llama_model\.base_model\.model\.model\.layers\.(\d+)\.self_attn\."
    r"(q_proj|k_proj|v_proj|o_proj)\.lora_(A|B)(?:\.default)?\.weight$"
)


class DeltaError(ValueError):
    """The delta does not fit the Vicuna it is converted with."""


@dataclass(frozen=True)
class LlamaDims:
    """The Llama sizes the delta must match (from the Vicuna config.json)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    def proj_shape(self, proj: str) -> tuple[int, int]:
        """(out_features, in_features) of an attention projection."""
        q_out = self.num_heads * self.head_dim
        kv_out = self.num_kv_heads * self.head_dim
        return {
            "q_proj": (q_out, self.hidden_size),
            "k_proj": (kv_out, self.hidden_size),
            "v_proj": (kv_out, self.hidden_size),
            "o_proj": (self.hidden_size, q_out),
        }[proj]


@dataclass
class Delta:
    """A checked delta: projector tensors and LoRA pairs keyed by (layer, proj)."""

    path: Path
    proj_weight: torch.Tensor  # [hidden, out_dim]
    proj_bias: torch.Tensor  # [hidden]
    lora_a: dict[tuple[int, str], torch.Tensor]  # [r, in]
    lora_b: dict[tuple[int, str], torch.Tensor]  # [out, r]
    rank: int
    alpha: int = LORA_ALPHA

    @property
    def scale(self) -> float:
        # peft's LoRA scaling: W' = W + (alpha / r) · B @ A
        return self.alpha / self.rank

    @property
    def out_dim(self) -> int:
        return int(self.proj_weight.shape[1])

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter tensors under the key names peft saves (no `.default`)."""
        out: dict[str, torch.Tensor] = {}
        for (layer, proj), a in sorted(self.lora_a.items()):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            out[f"{prefix}.lora_A.weight"] = a.contiguous()
            out[f"{prefix}.lora_B.weight"] = self.lora_b[(layer, proj)].contiguous()
        return out


def _fail(path: Path, key: str, problem: str) -> DeltaError:
    return DeltaError(f"delta {path}: key {key!r}: {problem}")


def load_delta(path: Path, dims: LlamaDims) -> Delta:
    """Load `path` and check every key against `dims`; raise DeltaError on any mismatch."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many kinds for a bad pickle
        raise DeltaError(f"delta {path}: cannot be read as a torch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise DeltaError(f"delta {path}: expected a state dict, found {type(state).__name__}")

    for key in (PROJ_WEIGHT, PROJ_BIAS):
        if key not in state:
            raise _fail(path, key, "missing")
    proj_w, proj_b = state[PROJ_WEIGHT], state[PROJ_BIAS]
    if proj_w.ndim != 2 or proj_w.shape[0] != dims.hidden_size:
        raise _fail(
            path,
            PROJ_WEIGHT,
            f"shape {tuple(proj_w.shape)} does not fit the Vicuna hidden size "
            f"{dims.hidden_size} (expected ({dims.hidden_size}, out_dim)); "
            "is the delta for another model size (7B hidden 4096, 13B hidden 5120)?",
        )
    if tuple(proj_b.shape) != (dims.hidden_size,):
        raise _fail(path, PROJ_BIAS, f"shape {tuple(proj_b.shape)}, expected ({dims.hidden_size},)")

    lora_a: dict[tuple[int, str], torch.Tensor] = {}
    lora_b: dict[tuple[int, str], torch.Tensor] = {}
    for key, tensor in state.items():
        if key in (PROJ_WEIGHT, PROJ_BIAS):
            continue
        match = _LORA_KEY.match(key)
        if match is None:
            raise _fail(path, key, "not a PandaGPT delta key (llama_proj or q/k/v/o LoRA)")
        layer, proj, which = int(match[1]), match[2], match[3]
        if layer >= dims.num_layers:
            raise _fail(path, key, f"layer {layer} but the Vicuna has {dims.num_layers} layers")
        (lora_a if which == "A" else lora_b)[(layer, proj)] = tensor

    rank = _check_lora(path, dims, lora_a, lora_b)
    return Delta(path, proj_w, proj_b, lora_a, lora_b, rank)


def _check_lora(
    path: Path,
    dims: LlamaDims,
    lora_a: dict[tuple[int, str], torch.Tensor],
    lora_b: dict[tuple[int, str], torch.Tensor],
) -> int:
    """Every layer × q/k/v/o has an A [r, in] and B [out, r]; return r."""
    first = lora_a.get((0, "q_proj"))
    rank = int(first.shape[0]) if first is not None and first.ndim == 2 else LORA_RANK
    for layer in range(dims.num_layers):
        for proj in LORA_TARGETS:
            out_f, in_f = dims.proj_shape(proj)
            base = f"llama_model.base_model.model.model.layers.{layer}.self_attn.{proj}"
            for which, table, want in (
                ("A", lora_a, (rank, in_f)),
                ("B", lora_b, (out_f, rank)),
            ):
                key = f"{base}.lora_{which}.default.weight"
                tensor = table.get((layer, proj))
                if tensor is None:
                    raise _fail(path, key, "missing (also looked for it without '.default')")
                if tuple(tensor.shape) != want:
                    raise _fail(path, key, f"shape {tuple(tensor.shape)}, expected {want}")
    # A rank other than PandaGPT's 32 is accepted: the scaling follows alpha / r.
    return rank
