"""The service's one settings object.

Every knob is a field here, read from `PANDAGPT_*` environment variables, an
optional YAML/TOML file (`PANDAGPT_CONFIG_FILE`), or passed in by the CLI. The
CLI builds `Settings` once and hands it down; no other module reads the
environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANDAGPT_", extra="ignore")

    # --- model and weights ---
    model_dir: Path | None = Field(
        None, description="Converted model directory; demo weights are made when unset."
    )
    demo_dir: Path = Field(
        Path(".cache/demo-weights"), description="Where `serve` makes demo weights on first run."
    )

    # --- language engine (vLLM) ---
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device for encoders.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Engine and encoder dtype; auto = float32 on CPU, bfloat16 on GPU."
    )
    max_model_len: int | None = Field(None, description="Context length; model default if unset.")
    gpu_memory_utilization: float = Field(
        0.9, description="Fraction of GPU memory for vLLM (sizes the KV cache)."
    )
    cpu_kvcache_space_gib: float = Field(1.0, description="KV cache size on CPU, GiB.")
    tensor_parallel_size: int = Field(1, ge=1)
    max_num_seqs: int = Field(64, ge=1, description="Max sequences the engine runs at once.")
    quantization: str | None = Field(None, description="vLLM quantization method, if any.")
    enable_lora: bool = Field(False, description="Serve unmerged PEFT adapters (--keep-lora).")
    max_lora_rank: int = Field(32, ge=1)

    # --- worker: admission, timeouts, encoder batching ---
    max_queue_size: int = Field(
        256,
        ge=0,
        description="Jobs that may wait for a running slot; beyond it the worker is busy.",
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Per-request limit, from admission to the last token."
    )
    encoder_max_batch_size: int = Field(32, ge=1, description="Media items per encoder forward.")
    encoder_max_wait_ms: float = Field(
        5.0, ge=0, description="How long the encoder waits to fill a batch."
    )
    preprocess_workers: int = Field(
        4, ge=1, description="Threads decoding and preprocessing media."
    )
