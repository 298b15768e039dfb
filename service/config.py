"""The service's one settings object.

Every knob is a field here, read from `PANDAGPT_*` environment variables, an
optional YAML/TOML file (`PANDAGPT_CONFIG_FILE`), or passed in by the CLI. The
CLI builds `Settings` once and hands it down; no other module reads the
environment.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from encoders.media.allowlists import AUDIO_CODECS, IMAGE_FORMATS, VIDEO_CODECS
from encoders.media.defaults import (
    MAX_AUDIO_DECODED_BYTES,
    MAX_DECODE_CPU_S,
    MAX_DECODED_BYTES,
    MAX_ITEM_BYTES,
    MAX_VIDEO_DECODE_PIXELS,
)

_log = logging.getLogger(__name__)


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
    enforce_eager: bool = Field(
        False, description="Skip vLLM graph capture/compilation (faster start, slower decode)."
    )

    grammar_compile_timeout_s: float = Field(
        5.0,
        gt=0,
        description="A response_format or tool schema must compile into a grammar within"
        " this (in a worker thread, before generation), else the request is a 400.",
    )

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
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="vLLM's scheduler policy; `priority` passes each request's priority"
        " (request field `priority`, else its API key's default) to the engine.",
    )
    # --- worker: media fidelity and prefix caching ---
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
    enable_prefix_caching: bool = Field(
        True,
        description="vLLM's prefix cache (it hashes blocks of prompt embeddings): a "
        "conversation's next turn reuses the KV blocks of its earlier prompt.",
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish."
    )

    # --- gateway: HTTP server ---
    host: str = Field("0.0.0.0", description="Bind address of the HTTP server.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP server.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve /metrics on its own port instead of the API port."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS (comma-separated); none = off."
    )
    served_model_name: str | None = Field(
        None, description="Model id clients use; default from the model manifest."
    )
    enable_playground: bool = Field(True, description="Serve the browser playground at `/`.")
    # Server sampling defaults, applied by the gateway (in split mode the gateway's
    # settings count, a worker's are not read): a request's value wins; unset here =
    # PandaGPT's reference (top_p 0.01, temperature 1.0, 256 tokens), applied by the worker.
    default_max_tokens: int | None = Field(
        None, ge=1, description="Server default for max_tokens (reference: 256)."
    )
    default_temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Server default temperature (reference: 1.0)."
    )
    default_top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="Server default top_p (reference: 0.01)."
    )
    default_top_k: int | None = Field(
        None, ge=-1, description="Server default top_k (reference: off)."
    )
    environment: Literal["dev", "staging", "production"] = Field(
        "dev", description="Outside dev, placeholder API keys are refused."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Root log level."
    )
    log_json: bool = Field(True, description="One JSON object per log line (with request id).")

    # --- gateway: auth ---
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted bearer keys (comma-separated or JSON list); none = no auth.",
        repr=False,
    )
    api_key_file: Path | None = Field(
        None,
        description="Mounted secret: one key per line, or YAML with named keys and per-key"
        " limits and priority (README: Per-key limits); re-read when it changes.",
    )
    ratelimit_prefix: str = Field(
        "pandagpt:rl:", description="Key prefix of the per-key limits in Redis."
    )

    # --- gateway: limits ---
    max_concurrent_requests: int = Field(
        512, ge=1, description="Requests the gateway admits at once; beyond it answers 429."
    )
    max_queued_requests: int = Field(
        0,
        ge=0,
        description="Requests that may wait at the gateway for an admission place, in priority"
        " order (lower first, FIFO within one); 0 = answer 429 at once when full.",
    )
    retry_after_s: float = Field(1.0, gt=0, description="Retry-After sent with 429.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body (413 beyond)."
    )
    max_media_bytes: int = Field(
        MAX_ITEM_BYTES, ge=1, description="Largest single media item, fetched or inline."
    )
    max_media_items: int = Field(8, ge=0, description="Media items allowed in one request.")
    # --- worker: what decoding one media item may cost (README, Reliability) ---
    max_decoded_bytes: int = Field(
        MAX_DECODED_BYTES, ge=16 * 2**20, description="Bytes one image or video may decode into."
    )
    max_audio_decoded_bytes: int = Field(
        MAX_AUDIO_DECODED_BYTES,
        ge=8 * 2**20,
        description="Bytes one audio item's windows may hold.",
    )
    max_video_decode_pixels: int = Field(
        MAX_VIDEO_DECODE_PIXELS, ge=10**6, description="Frames to decode × frame pixels, per video."
    )
    max_decode_cpu_s: float = Field(
        MAX_DECODE_CPU_S, gt=0, description="CPU seconds one item may take."
    )
    decode_reserve_wait_s: float = Field(
        2.0, ge=0, description="Wait for room in the memory budget before 429 with Retry-After."
    )
    video_codecs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(VIDEO_CODECS), min_length=1, description="FFmpeg decoders."
    )
    audio_codecs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(AUDIO_CODECS), min_length=1, description="FFmpeg decoders."
    )
    image_formats: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(IMAGE_FORMATS), min_length=1, description="Pillow formats."
    )
    max_n: int = Field(16, ge=1, description="Largest `n` (choices) one chat request may ask for.")
    max_total_tokens: int = Field(
        32768,
        ge=1,
        description="Largest n × max_tokens of one chat request (the tokens it may make"
        " the engine generate); beyond it a 400 naming max_tokens.",
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="The whole request body must arrive within this; slower uploads get 408.",
    )
    memory_budget_bytes: int | None = Field(
        None,
        ge=1024 * 1024,
        description="Bytes of request bodies and media a process (gateway or worker) holds at"
        " once; a request that does not fit gets 429. Unset: half of what the container's"
        " memory limit (cgroup; else the machine's memory) leaves once the process is loaded.",
    )
    malloc_mmap_threshold_bytes: int = Field(
        0,
        ge=0,
        description="glibc malloc: allocations above this get their own mapping, unmapped when"
        " freed; 0 = glibc's default. A fixed 1 MiB lowers a gateway's peak under large bodies,"
        " but costs media decoding 17-34% more CPU in page faults: leave workers at 0.",
    )
    malloc_arena_max: int = Field(
        0, ge=0, description="glibc malloc arenas (0 = glibc's default of 8 per core)."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Each request's headers must arrive within this (from the connection's"
        " opening, or the next request's first byte); slower connections are closed"
        " (slow-loris).",
    )

    # --- gateway: media fetching ---
    media_connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout for media URLs.")
    media_read_timeout_s: float = Field(
        30.0, gt=0, description="Per read and for the whole download."
    )
    media_max_redirects: int = Field(
        3, ge=0, description="Redirects followed per media URL, each re-checked."
    )
    media_allow_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (or `.suffix`) fetched even if they resolve to private addresses.",
    )
    media_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDR networks exempt from the private-address block."
    )
    media_allowlist_only: bool = Field(
        False, description="Fetch only from the allowed domains/networks."
    )
    media_local_dir: Path | None = Field(
        None, description="Directory served to `file://` media URLs; unset = refused."
    )

    # --- gateway: workers and cache ---
    worker_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Worker base URLs (comma-separated): one Kubernetes Service or a list.",
    )
    worker_poll_interval_s: float = Field(5.0, gt=0, description="Worker readiness poll period.")
    worker_connect_timeout_s: float = Field(
        5.0, gt=0, description="Connect timeout from gateway to workers."
    )
    worker_token: str | None = Field(
        None,
        description="Shared secret between gateway and workers: the gateway sends it as a"
        " bearer token, workers refuse `/internal/*` without it. Unset: that API is open,"
        " so keep workers on a private network.",
        repr=False,
    )
    redis_url: str | None = Field(
        None,
        description="Embedding cache and the gateways' shared per-key limits in Redis;"
        " in-memory LRU and per-process limits when unset.",
        repr=False,
    )
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="Embedding cache entry lifetime.")
    cache_prefix: str = Field("pandagpt:emb:", description="Key prefix in Redis.")
    cache_max_entries: int = Field(10_000, ge=0, description="In-memory cache bound; 0 = off.")
    cache_socket_timeout_s: float = Field(
        0.25, gt=0, description="Redis timeout; slower answers count as misses."
    )
    # --- stored responses (`POST /v1/responses` with `store: true`) ---
    responses_ttl_s: int = Field(
        30 * 24 * 3600, ge=1, description="Lifetime of a stored response (Redis or in memory)."
    )
    responses_prefix: str = Field("pandagpt:resp:", description="Key prefix of stored responses.")
    responses_max_entries: int = Field(
        10_000, ge=0, description="In-memory store bound (no Redis URL), LRU; 0 = store nothing."
    )
    responses_socket_timeout_s: float = Field(
        2.0, gt=0, description="Redis timeout for stored responses; slower is a 503."
    )
    responses_heartbeat_s: float = Field(
        2.0,
        gt=0,
        description="How often a gateway running a background response marks it alive; one"
        " silent for 5 periods is reported failed.",
    )

    @field_validator(
        "cors_origins",
        "api_keys",
        "media_allow_domains",
        "media_allow_networks",
        "worker_urls",
        "video_codecs",
        "audio_codecs",
        "image_formats",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Env vars arrive as one string: accept a JSON list or comma-separated items.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("worker_urls")
    @classmethod
    def _strip_slash(cls, value: list[str]) -> list[str]:
        return [url.rstrip("/") for url in value]

    @field_validator("media_allow_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().rstrip(".") for domain in value]

    @field_validator("media_allow_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(net, strict=False)) for net in value]

    @model_validator(mode="after")
    def _refuse_placeholder_keys(self) -> Settings:
        weak = [key for key in self.api_keys if key.lower() in PLACEHOLDER_KEYS or len(key) < 8]
        if weak and self.environment != "dev":
            raise ValueError(
                f"{len(weak)} placeholder or short API key(s) in api_keys; "
                "set real keys (>= 8 chars) or PANDAGPT_ENVIRONMENT=dev"
            )
        if weak:
            _log.warning("placeholder API key in use (allowed in dev only)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > settings file.
        path = _CONFIG_FILE.get() or os.environ.get("PANDAGPT_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        sources.append(file_secret_settings)
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from a file (or `PANDAGPT_CONFIG_FILE`), env and overrides.
        `None` overrides are dropped so unset CLI flags fall through."""
        token = _CONFIG_FILE.set(str(config_file) if config_file else None)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _CONFIG_FILE.reset(token)


PLACEHOLDER_KEYS = frozenset({"changeme", "change-me", "secret", "password", "test", "apikey"})

# Set only while `Settings.load` runs: the file path a CLI `--config` asked for.
_CONFIG_FILE: ContextVar[str | None] = ContextVar("pandagpt_config_file", default=None)


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ValueError(f"settings file not found: {path}")
    if path.suffix in {".yaml", ".yml"}:
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    if path.suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    raise ValueError(f"settings file must be .yaml, .yml or .toml: {path}")
