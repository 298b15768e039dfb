"""The vLLM side: one in-process `AsyncLLM` generating from prompt embeddings.

The worker builds the whole prompt as embeddings (token rows + the soft
token) and vLLM generates from `{"prompt_embeds": tensor}`. Merged models run
as a plain Llama; `--keep-lora` models run with `enable_lora` and one
`LoRARequest` per adapter dir, each adapter a served model name.

`generate` follows vLLM's own contract: cancelling or closing the iterator
aborts the request in the engine (the GPU slot is freed), and errors pass
through unchanged. vLLM spawns processes: callers guard their entry points
with `if __name__ == "__main__"`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from service.config import EngineSettings
from service.contract import SamplingSettings, TokenLogprob, TopLogprob
from service.errors import ContextLengthExceeded, InvalidRequest, ServiceError, WorkerFailed
from service.weights.layout import Manifest, ModelLayout
from service.worker.sampling import (
    StopHoldback,
    stop_strings,
    turn_stop_applies,
    vllm_sampling_params,
)

GiB = 1 << 30
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationDelta:
    """One step of one completion: the new text and ids since the last delta."""

    index: int  # which of the n completions
    text: str
    token_ids: list[int]
    finish_reason: str | None  # "stop" | "length" | "abort" | None while running
    prompt_tokens: int  # embedding rows
    completion_tokens: int  # generated so far for this completion
    logprobs: list[TokenLogprob] | None = None  # one per id in token_ids, when asked for


# OpenAI's floor for a logprob: -inf has no JSON spelling.
MIN_LOGPROB = -9999.0


def token_logprob(token_id: int, position: dict[int, Any], top: int) -> TokenLogprob:
    """One position of vLLM's logprobs ({id: Logprob}) as the chosen token and its top-k."""

    def entry(logprob: Any) -> TopLogprob:
        return TopLogprob(
            token=logprob.decoded_token or "", logprob=max(logprob.logprob, MIN_LOGPROB)
        )

    ranked = sorted((lp for lp in position.values() if lp.rank is not None), key=lambda lp: lp.rank)
    chosen = entry(position[token_id])
    return TokenLogprob(
        token=chosen.token,
        logprob=chosen.logprob,
        top_logprobs=[entry(lp) for lp in ranked[:top]],
    )


def resolve_device(settings: EngineSettings) -> str:
    if settings.device != "auto":
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(settings: EngineSettings, device: str) -> torch.dtype:
    """float32 on CPU unless told otherwise: vLLM's "auto" would pick bf16 there."""
    if settings.dtype != "auto":
        dtype: torch.dtype = getattr(torch, settings.dtype)
        return dtype
    return torch.float32 if device == "cpu" else torch.bfloat16


def adapter_dirs(layout: ModelLayout) -> dict[str, Path]:
    """Every `lora/<name>/` with an adapter config: one served name each."""
    root = layout.root / "lora"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "adapter_config.json").is_file()}


def engine_args(
    settings: EngineSettings, layout: ModelLayout, manifest: Manifest, lora: bool
) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    kwargs: dict[str, Any] = {
        "model": str(layout.llm),
        "tokenizer": str(layout.llm),
        "served_model_name": manifest.served_model_name,
        "dtype": str(dtype).removeprefix("torch."),
        "max_model_len": settings.max_model_len,
        "enable_prompt_embeds": True,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "max_num_seqs": settings.max_num_seqs,
        "quantization": settings.quantization,
        "enforce_eager": settings.enforce_eager,
        "disable_log_stats": True,
        "enable_log_requests": False,
        # On by default in vLLM for Llama; named here so a setting can turn it off
        # (bench/multiturn.py measures both).
        "enable_prefix_caching": settings.enable_prefix_caching,
        "scheduling_policy": settings.scheduling_policy,
        # One grammar backend, the one the worker pre-compiles with
        # (service/worker/grammar.py); compact JSON, since "any whitespace" lets a
        # weak model pad with blanks until max_tokens.
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
    }
    if device == "cpu":
        # On CPU gpu_memory_utilization would reserve a fraction of host RAM;
        # an explicit KV size is what VLLM_CPU_KVCACHE_SPACE sets, without env.
        kwargs["kv_cache_memory_bytes"] = int(settings.cpu_kvcache_space_gib * GiB)
    else:
        kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
    if lora:
        kwargs.update(
            enable_lora=True,
            max_lora_rank=settings.max_lora_rank,
            max_loras=max(1, len(adapter_dirs(layout))),
            # PandaGPT's adapters touch q/k/v/o only. Left unrestricted, vLLM also
            # wraps embed_tokens, and a step that mixes prompt-embeds prefill with
            # token decode then crashes the engine (punica indices for all tokens
            # meet the embedding of the token rows alone; vLLM issue #51122).
            lora_target_modules=["qkv_proj", "o_proj"],
        )
    return AsyncEngineArgs(**kwargs)


class LLMEngine:
    """Owns the AsyncLLM; one per worker process."""

    def __init__(
        self,
        engine: Any,
        manifest: Manifest,
        adapters: dict[str, Path],
        *,
        priority_scheduling: bool = False,
    ) -> None:
        self._engine = engine
        # Under "fcfs" vLLM refuses any priority but 0, so it is only passed under "priority".
        self._priority_scheduling = priority_scheduling
        self.manifest = manifest
        self._lora_requests: dict[str, Any] = {}
        if adapters:
            from vllm.lora.request import LoRARequest

            for i, (name, path) in enumerate(adapters.items(), start=1):
                self._lora_requests[name] = LoRARequest(name, i, str(path))

    @classmethod
    def start(cls, settings: EngineSettings, model_dir: Path) -> LLMEngine:
        """Start vLLM for a converted model dir (about 20 s for a tiny model on CPU)."""
        from vllm.v1.engine.async_llm import AsyncLLM

        layout = ModelLayout(model_dir)
        manifest = Manifest.load(layout.manifest)
        adapters = adapter_dirs(layout)
        if not manifest.merged and not adapters:
            raise ValueError(f"{model_dir}: LoRA is not merged and lora/ holds no adapter")
        # An unmerged base alone is plain Vicuna, not PandaGPT: LoRA mode is implied.
        lora = settings.enable_lora or not manifest.merged
        if lora and not adapters:
            raise ValueError(f"{model_dir}: enable_lora is set but lora/ holds no adapter")
        engine = AsyncLLM.from_engine_args(engine_args(settings, layout, manifest, lora))
        return cls(
            engine,
            manifest,
            adapters if lora else {},
            priority_scheduling=settings.scheduling_policy == "priority",
        )

    @property
    def served_model_names(self) -> list[str]:
        return list(self._lora_requests) or [self.manifest.served_model_name]

    @property
    def tokenizer(self) -> Any:
        return self._engine.get_tokenizer()

    @property
    def vocab_size(self) -> int:
        """The model's vocabulary (may exceed the tokenizer's: padded rows)."""
        return int(self._engine.model_config.get_vocab_size())

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still working on (drops when a caller goes away)."""
        return int(self._engine.get_num_unfinished_requests())

    async def check_health(self) -> None:
        """Raises when the engine core has died (readiness turns false)."""
        await self._engine.check_health()

    def _lora_request(self, model: str | None) -> Any:
        if not self._lora_requests:
            if model not in (None, self.manifest.served_model_name):
                raise KeyError(model)
            return None
        if model is None:
            model = self.manifest.served_model_name
            if model not in self._lora_requests:
                model = next(iter(self._lora_requests))
        return self._lora_requests[model]

    async def generate(
        self,
        prompt_embeds: torch.Tensor,
        sampling: SamplingSettings,
        request_id: str,
        lora_name: str | None = None,
        priority: int = 0,
    ) -> AsyncIterator[GenerationDelta]:
        """Deltas for each of the `n` completions; `KeyError` for an unknown model name.
        `priority` (lower first) counts only when the engine schedules by priority."""
        lora_request = self._lora_request(lora_name)
        prompt_tokens = int(prompt_embeds.shape[0])
        stops = stop_strings(sampling)
        turn_stop = turn_stop_applies(sampling)
        holdbacks: dict[int, StopHoldback] = {}
        sent_ids: dict[int, int] = {}  # ids already sent, per completion
        finished: set[int] = set()
        stream = self._engine.generate(
            {"prompt_embeds": prompt_embeds.detach().cpu()},
            vllm_sampling_params(sampling),
            request_id,
            lora_request=lora_request,
            priority=priority if self._priority_scheduling else 0,
        )
        try:
            async for output in stream:
                for completion in output.outputs:
                    idx = completion.index
                    hold = holdbacks.setdefault(idx, StopHoldback(stops, turn_stop))
                    if idx in finished:
                        continue  # cumulative outputs repeat finished completions
                    ids = list(completion.token_ids)
                    done = completion.finish_reason is not None
                    text = hold.delta(completion.text, done)
                    first_new = sent_ids.get(idx, 0)
                    new_ids = ids[first_new:]
                    sent_ids[idx] = len(ids)
                    if done:
                        finished.add(idx)
                    if not text and not new_ids and not done:
                        continue
                    yield GenerationDelta(
                        index=idx,
                        text=text,
                        token_ids=new_ids,
                        finish_reason=completion.finish_reason,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=len(ids),
                        logprobs=_new_logprobs(completion, first_new, sampling.logprobs),
                    )
        finally:
            # Closing our iterator (caller gone) must reach vLLM's generator,
            # whose GeneratorExit handler aborts the request in the engine.
            with contextlib.suppress(RuntimeError):
                await stream.aclose()

    def shutdown(self) -> None:
        self._engine.shutdown()
        # AsyncLLM.__del__ shuts down again, and at interpreter exit that second
        # call fails on torn-down module globals; once is enough.
        self._engine.shutdown = lambda *args, **kwargs: None


def _new_logprobs(completion: Any, first_new: int, top: int | None) -> list[TokenLogprob] | None:
    """Logprobs of the ids from `first_new` on (cumulative output holds them all)."""
    if top is None or completion.logprobs is None:
        return None
    ids = completion.token_ids
    return [token_logprob(ids[i], completion.logprobs[i], top) for i in range(first_new, len(ids))]


def engine_error(exc: Exception, request_id: str) -> ServiceError:
    """Map a vLLM failure once, at this boundary: request faults are 400s, the rest 500."""
    from vllm.exceptions import VLLMClientError

    message = str(exc)
    if isinstance(exc, VLLMClientError):
        # vLLM words it two ways: the engine's input check ("maximum model length")
        # and the renderer's ("maximum context length", with parameter=input_tokens).
        if "maximum model length" in message or "maximum context length" in message:
            error: ServiceError = ContextLengthExceeded(message, param="messages")
        else:
            error = InvalidRequest(message, param=getattr(exc, "parameter", None))
    else:
        _log.error("generation failed for %s: %r", request_id, exc, exc_info=exc)
        error = WorkerFailed("Generation failed in the engine.")
    error.__cause__ = exc
    return error
