"""`pandagpt convert`: released PandaGPT pieces → the service's model directory.

Inputs: a Vicuna v0 HF dir (the user merged it from LLaMA + the Vicuna delta),
a PandaGPT delta `pytorch_model.pt` and `imagebind_huge.pth`. By default the
LoRA is merged into q/k/v/o (W += alpha/r · B @ A, computed in fp32 and cast
back) because vLLM then runs a plain Llama; `--keep-lora` leaves `llm/`
untouched and writes a PEFT adapter for vLLM's LoRA serving instead.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from tqdm import tqdm

from service.weights.delta import Delta, DeltaError, LlamaDims, load_delta
from service.weights.imagebind import ImageBindWeightsError, convert_imagebind, read_config
from service.weights.layout import (
    LORA_TARGETS,
    Manifest,
    ModelLayout,
    sha256_tree,
    tree_files,
)
from service.weights.llm_io import ShardWriter, count_tensors, iter_tensors, source_files

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
_ATTN_WEIGHT = re.compile(
    r"^model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.weight$"
)


class ConversionError(ValueError):
    """A conversion input is missing or inconsistent; the message names the file."""


def llama_dims(config: dict[str, Any]) -> LlamaDims:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    return LlamaDims(
        hidden_size=hidden,
        num_layers=int(config["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
    )


def tokenizer_special_ids(llm_dir: Path) -> tuple[int, int]:
    """BOS/EOS from the tokenizer: early Vicuna v0 configs say 0/1, the tokenizer says 1/2."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(llm_dir))
    if tok.bos_token_id is None or tok.eos_token_id is None:
        raise ConversionError(f"tokenizer in {llm_dir} defines no BOS/EOS token")
    return int(tok.bos_token_id), int(tok.eos_token_id)


def copy_tokenizer(vicuna: Path, out_dir: Path) -> None:
    """Copy the tokenizer files; fix the class name of early LLaMA conversions.

    Checkpoints converted before transformers 4.28 name the class
    "LLaMATokenizer", which current transformers (and so vLLM) cannot load.
    """
    found = False
    for name in TOKENIZER_FILES:
        if (vicuna / name).exists():
            shutil.copy2(vicuna / name, out_dir / name)
            found = found or name in ("tokenizer.json", "tokenizer.model")
    if not found:
        raise ConversionError(f"vicuna {vicuna}: no tokenizer.json or tokenizer.model")
    config_path = out_dir / "tokenizer_config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text())
        if config.get("tokenizer_class") in ("LLaMATokenizer", "LLaMATokenizerFast"):
            config["tokenizer_class"] = "LlamaTokenizer"
            config_path.write_text(json.dumps(config, indent=2) + "\n")


def default_name(delta_path: Path, hidden: int) -> str:
    """The delta's folder name when it says PandaGPT (fetch-weights' layout), else by size."""
    parent = delta_path.resolve().parent.name
    if "pandagpt" in parent.lower():
        return parent
    return {4096: "pandagpt-7b", 5120: "pandagpt-13b"}.get(hidden, "pandagpt")


def write_llm(vicuna: Path, delta: Delta | None, out_dir: Path, scale: float) -> str:
    """Stream the Llama weights into out_dir, merging the LoRA when `delta` is given.

    Returns the source dtype name. Every q/k/v/o of every layer must be met
    exactly once when merging, so a truncated checkpoint cannot pass silently.
    """
    files = source_files(vicuna)
    writer = ShardWriter(out_dir)
    merged: set[tuple[int, str]] = set()
    dtype = "float32"
    bar = tqdm(total=count_tensors(files), desc="llm weights", unit="tensor")
    for name, tensor in iter_tensors(files):
        dtype = str(tensor.dtype).removeprefix("torch.")
        match = _ATTN_WEIGHT.match(name)
        if delta is not None and match:
            key = (int(match[1]), match[2])
            a, b = delta.lora_a[key].float(), delta.lora_b[key].float()
            if tuple(tensor.shape) != (b.shape[0], a.shape[1]):
                raise ConversionError(
                    f"vicuna {vicuna}: key {name!r} has shape {tuple(tensor.shape)}, "
                    f"the delta's LoRA needs {(b.shape[0], a.shape[1])}"
                )
            tensor = (tensor.float() + scale * (b @ a)).to(tensor.dtype)
            merged.add(key)
        writer.add(name, tensor)
        bar.update()
    bar.close()
    writer.close()
    if delta is not None:
        missing = set(delta.lora_a) - merged
        if missing:
            layer, proj = min(missing)
            raise ConversionError(
                f"vicuna {vicuna}: key 'model.layers.{layer}.self_attn.{proj}.weight' missing"
            )
    return dtype


def write_configs(vicuna: Path, out_dir: Path, bos: int, eos: int, dtype: str) -> dict[str, Any]:
    """Write config.json and generation_config.json with BOS/EOS set to the tokenizer's ids."""
    config: dict[str, Any] = json.loads((vicuna / "config.json").read_text())
    config.update(bos_token_id=bos, eos_token_id=eos, torch_dtype=dtype)
    config.setdefault("architectures", ["LlamaForCausalLM"])
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen_path = vicuna / "generation_config.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    # vLLM adds generation_config's eos to the stop tokens: a stale 1 would stop on <s>.
    gen.update(bos_token_id=bos, eos_token_id=eos)
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    return config


def write_adapter(delta: Delta, out_dir: Path, base: Path) -> None:
    """A PEFT LoRA adapter dir (what vLLM's LoRARequest loads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": delta.rank,
        "lora_alpha": delta.alpha,
        "lora_dropout": 0.0,
        "target_modules": list(LORA_TARGETS),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "modules_to_save": None,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    save_file(delta.peft_state_dict(), str(out_dir / "adapter_model.safetensors"))


def convert(
    vicuna: Path,
    delta_path: Path,
    imagebind: Path,
    output: Path,
    *,
    imagebind_config: Path | None = None,
    keep_lora: bool = False,
    name: str | None = None,
) -> Manifest:
    """Run the whole conversion; the manifest is written last, so its presence means done."""
    for label, path in (("vicuna", vicuna), ("delta", delta_path), ("imagebind", imagebind)):
        if not path.exists():
            raise ConversionError(f"{label} {path}: not found")
    config_path = vicuna / "config.json"
    if not config_path.exists():
        raise ConversionError(f"vicuna {vicuna}: config.json missing")
    dims = llama_dims(json.loads(config_path.read_text()))
    delta = load_delta(delta_path, dims)
    served = name or default_name(delta_path, dims.hidden_size)

    layout = ModelLayout(output)
    if layout.manifest.exists():
        layout.manifest.unlink()  # an interrupted rerun must not look finished
    layout.llm.mkdir(parents=True, exist_ok=True)
    copy_tokenizer(vicuna, layout.llm)
    bos, eos = tokenizer_special_ids(layout.llm)

    # Cheap checks and ImageBind (checked strictly) before the long LLM pass,
    # so a wrong file fails in seconds rather than after minutes of streaming.
    out_dim = read_config(imagebind_config).out_embed_dim
    if out_dim != delta.out_dim:
        raise ConversionError(
            f"delta {delta_path}: key 'llama_proj.weight' takes {delta.out_dim}-d features, "
            f"imagebind {imagebind} produces {out_dim}-d"
        )
    convert_imagebind(imagebind, imagebind_config, layout.imagebind)

    dtype = write_llm(vicuna, None if keep_lora else delta, layout.llm, delta.scale)
    config = write_configs(vicuna, layout.llm, bos, eos, dtype)
    if keep_lora:
        write_adapter(delta, layout.lora_dir(served), layout.llm)
    projector = {"llama_proj.weight": delta.proj_weight, "llama_proj.bias": delta.proj_bias}
    save_file({k: v.contiguous() for k, v in projector.items()}, str(layout.projector))

    inputs = {"vicuna": vicuna, "delta": delta_path, "imagebind": imagebind}
    total = sum(f.stat().st_size for p in inputs.values() for f in tree_files(p))
    with tqdm(total=total, desc="sha256 of sources", unit="B", unit_scale=True) as bar:
        sources = {
            label: {"path": str(path.resolve()), "sha256": sha256_tree(path, bar)}
            for label, path in inputs.items()
        }
    manifest = Manifest(
        served_model_name=served,
        hidden_size=dims.hidden_size,
        num_layers=dims.num_layers,
        num_heads=dims.num_heads,
        vocab_size=int(config["vocab_size"]),
        max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
        torch_dtype=dtype,
        imagebind_out_dim=out_dim,
        bos_token_id=bos,
        eos_token_id=eos,
        merged=not keep_lora,
        lora={
            "r": delta.rank,
            "alpha": delta.alpha,
            "target_modules": list(LORA_TARGETS),
            "adapters": {served: f"lora/{served}"} if keep_lora else {},
        },
        sources=sources,
    )
    manifest.save(layout.manifest)
    return manifest


def run_convert_cli(args: argparse.Namespace) -> int:
    try:
        manifest = convert(
            args.vicuna,
            args.delta,
            args.imagebind,
            args.output,
            imagebind_config=args.imagebind_config,
            keep_lora=args.keep_lora,
            name=args.name,
        )
    except (ConversionError, DeltaError, ImageBindWeightsError, FileNotFoundError) as exc:
        print(f"pandagpt convert: error: {exc}")
        return 2
    mode = "merged" if manifest.merged else "LoRA kept apart"
    print(f"wrote {args.output} ({manifest.served_model_name}, {mode})")
    return 0
