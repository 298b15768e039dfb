"""Settings of the worker side: weights, the language engine, the encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from service.config.fields import GROUP_CONFIG


class ModelSettings(BaseSettings):
    """Model and weights: which checkpoint is served, and under what name."""

    model_config = GROUP_CONFIG

    model_dir: Path | None = Field(
        None, description="Converted model directory; demo weights are made when unset."
    )
    demo_dir: Path = Field(
        Path(".cache/demo-weights"), description="Where `serve` makes demo weights on first run."
    )
    served_model_name: str | None = Field(
        None, description="Model id clients use; default from the model manifest."
    )


class EngineSettings(BaseSettings):
    """Language engine (vLLM): device, memory, scheduling and grammars."""

    model_config = GROUP_CONFIG

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device for encoders.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Engine and encoder dtype; auto = float32 on CPU, bfloat16 on GPU."
    )
    max_model_len: int | None = Field(None, description="Context length; model default if unset.")
    gpu_memory_utilization: float = Field(
        0.9, description="Fraction of GPU memory for vLLM (sizes the KV cache)."
    )
    cpu_kvcache_space_gib: float = Field(1.0, description="KV cache size on CPU, GiB.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the engine shards the LLM over.")
    max_num_seqs: int = Field(64, ge=1, description="Max sequences the engine runs at once.")
    quantization: str | None = Field(None, description="vLLM quantization method, if any.")
    enable_lora: bool = Field(False, description="Serve unmerged PEFT adapters (--keep-lora).")
    max_lora_rank: int = Field(32, ge=1, description="Largest LoRA rank the engine accepts.")
    enforce_eager: bool = Field(
        False, description="Skip vLLM graph capture/compilation (faster start, slower decode)."
    )
    enable_prefix_caching: bool = Field(
        True,
        description="vLLM's prefix cache (it hashes blocks of prompt embeddings): a "
        "conversation's next turn reuses the KV blocks of its earlier prompt.",
    )
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="vLLM's scheduler policy; `priority` passes each request's priority"
        " (request field `priority`, else its API key's default) to the engine.",
    )
    grammar_compile_timeout_s: float = Field(
        5.0,
        gt=0,
        description="A response_format or tool schema must compile into a grammar within"
        " this (in a worker thread, before generation), else the request is a 400.",
    )


class EncoderSettings(BaseSettings):
    """ImageBind encoder: batching, preprocessing threads and still-image fidelity."""

    model_config = GROUP_CONFIG

    encoder_max_batch_size: int = Field(32, ge=1, description="Media items per encoder forward.")
    encoder_max_wait_ms: float = Field(
        5.0, ge=0, description="How long the encoder waits to fill a batch."
    )
    preprocess_workers: int = Field(
        4, ge=1, description="Threads decoding and preprocessing media."
    )
    media_fidelity: Literal["exact", "fast"] = Field(
        "exact",
        description="Still images: `exact` = the reference's pixels; `fast` = JPEG decoded "
        "at a reduced scale and resized by torch (≥ 4× faster on 12 MP photos, not bit-identical); "
        "on CUDA, JPEGs are decoded in batches by nvJPEG and resized on the GPU.",
    )
    encoder_cuda_graphs: bool = Field(
        True,
        description="On CUDA, the encoder replays captured CUDA graphs (one per tower, item "
        "shape and batch bucket) instead of launching its kernels one by one; ignored on CPU.",
    )
