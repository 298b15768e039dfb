"""The converted model directory: paths, the manifest, checksums.

```
<model_dir>/pandagpt.json          Manifest (below)
<model_dir>/llm/                   HF Llama dir; LoRA merged unless kept apart
<model_dir>/lora/<name>/           PEFT adapter dir (only with --keep-lora)
<model_dir>/projector.safetensors  llama_proj.weight [hidden, out_dim], llama_proj.bias
<model_dir>/imagebind.safetensors  + imagebind_config.json
```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "pandagpt.json"
MANIFEST_VERSION = 1
# PandaGPT's LoRA settings (its `code/config/openllama_peft.yaml`); rank is
# re-read from the delta's shapes and checked against this.
LORA_RANK = 32
LORA_ALPHA = 32
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class ModelLayout:
    """Where each piece of a converted model lives."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def llm(self) -> Path:
        return self.root / "llm"

    @property
    def projector(self) -> Path:
        return self.root / "projector.safetensors"

    @property
    def imagebind(self) -> Path:
        return self.root / "imagebind.safetensors"

    @property
    def imagebind_config(self) -> Path:
        return self.root / "imagebind_config.json"

    def lora_dir(self, name: str) -> Path:
        return self.root / "lora" / name


@dataclass
class Manifest:
    """`pandagpt.json`: what the worker needs to know before loading anything."""

    served_model_name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    max_position_embeddings: int
    torch_dtype: str
    imagebind_out_dim: int
    bos_token_id: int
    eos_token_id: int
    merged: bool
    lora: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    version: int = MANIFEST_VERSION

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> Manifest:
        data = json.loads(path.read_text())
        return cls(**data)


def sha256_file(path: Path, bar: Any = None, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks (the inputs can be 26 GB).

    `bar`, a tqdm bar counting bytes, advances as the file is read."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            if bar is not None:
                bar.update(len(block))
    return digest.hexdigest()


def tree_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def sha256_tree(path: Path, bar: Any = None) -> str:
    """sha256 over a file, or over the sorted (name, sha256) pairs of a directory's files."""
    if path.is_file():
        return sha256_file(path, bar)
    digest = hashlib.sha256()
    for item in tree_files(path):
        digest.update(f"{item.relative_to(path)}\0{sha256_file(item, bar)}\n".encode())
    return digest.hexdigest()
