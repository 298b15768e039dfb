"""Embedding logic: inputs (text, fetched media) → `EmbedJob` → OpenAI list.

The worker returns L2-normalised ImageBind vectors; `base64` encodes them as
float32 little-endian like OpenAI does.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence

from service import telemetry
from service.api.admission import admit
from service.api.chat_completion.protocol import TextPart
from service.api.chat_completion.validation import check_media_count
from service.api.embeddings.protocol import (
    EmbeddingData,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
)
from service.api.media.parts import MediaRef, load_all
from service.api.serving import OpenAIServing
from service.cache.base import pack_f32
from service.contract import EmbedJob, MediaItem
from service.errors import DeadlineExceeded, InvalidRequest, ServiceError, WorkerFailed
from service.ratelimit.rate_limiter import CHARS_PER_TOKEN

MAX_INPUTS = 2048  # OpenAI's cap on inputs per request


class EmbeddingServing(OpenAIServing):
    async def create(self, request: EmbeddingRequest, request_id: str) -> EmbeddingResponse:
        raw = [request.input] if isinstance(request.input, str) else list(request.input)
        if not raw:
            raise InvalidRequest("input must not be empty.", param="input")
        if len(raw) > MAX_INPUTS:
            raise InvalidRequest(f"At most {MAX_INPUTS} inputs per request.", param="input")
        model = await self.catalog.resolve(request.model)
        with telemetry.span("admission"):
            ticket = await admit(
                self.rate_limiter,
                self.inflight,
                endpoint="embeddings",
                tokens=_text_chars(raw) // CHARS_PER_TOKEN,
                priority=None,
                queue_timeout_s=self.settings.request_timeout_s,
            )
        start = time.perf_counter()
        outcome = "error"
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                inputs = await self._inputs(raw)
                ticket.grant.count_media(x.modality for x in inputs if isinstance(x, MediaItem))
                result = await self.worker.embed(
                    EmbedJob(request_id=request_id, model=model.id, inputs=inputs)
                )
            outcome = "ok"
            ticket.record_usage(result.prompt_tokens, 0)
        except TimeoutError as exc:
            outcome = "timeout"
            raise DeadlineExceeded(
                f"Request timed out after {self.settings.request_timeout_s:g}s."
            ) from exc
        except ServiceError:
            raise
        except Exception as exc:
            raise WorkerFailed("The worker failed while embedding.") from exc
        finally:
            self.metrics.e2e_request_latency.labels(
                endpoint="embeddings", outcome=outcome, model=model.id
            ).observe(time.perf_counter() - start)
            ticket.release()
        if len(result.embeddings) != len(inputs):
            raise WorkerFailed("The worker returned the wrong number of embeddings.")
        if request.dimensions is not None and result.embeddings:
            native = len(result.embeddings[0])
            if request.dimensions != native:
                raise InvalidRequest(
                    f"dimensions must be {native} (the encoder's size) or omitted.",
                    param="dimensions",
                )
        data = [
            EmbeddingData(
                index=i,
                embedding=base64.b64encode(pack_f32(vec)).decode()
                if request.encoding_format == "base64"
                else vec,
            )
            for i, vec in enumerate(result.embeddings)
        ]
        usage = EmbeddingUsage(
            prompt_tokens=result.prompt_tokens, total_tokens=result.prompt_tokens
        )
        return EmbeddingResponse(data=data, model=model.id, usage=usage)

    async def _inputs(self, raw: Sequence[object]) -> list[str | MediaItem]:
        """Texts as they are, media parts fetched (all at once) in their places."""
        refs = [
            MediaRef.of_part(item, f"input.{i}")
            for i, item in enumerate(raw)
            if not isinstance(item, str | TextPart)
        ]
        check_media_count(len(refs), self.settings.max_media_items, "input")
        media = iter(await load_all(refs, self.fetcher))
        inputs: list[str | MediaItem] = []
        for item in raw:
            if isinstance(item, str):
                inputs.append(item)
            elif isinstance(item, TextPart):
                inputs.append(item.text)
            else:
                inputs.append(next(media))
        return inputs


def _text_chars(raw: Sequence[object]) -> int:
    return sum(
        len(x if isinstance(x, str) else x.text) for x in raw if isinstance(x, str | TextPart)
    )
