"""What `ModelWorker` needs from the encoder and the engine (the seams for tests).

The real implementations are `encoders.micro_batcher.Encoder` and
`service.worker.engine.LLMEngine`; unit tests pass small fakes with the same
methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import torch

from service.contract import SamplingSettings
from service.worker.engine import GenerationDelta


class EncoderLike(Protocol):
    async def encode(self, modality: str, data: bytes) -> torch.Tensor:
        """The PandaGPT feature of one item, `[out_dim]`; raises `MediaError`."""
        ...

    async def embed(self, modality: str, data: bytes | str) -> torch.Tensor:
        """ImageBind's L2-normalised embedding of one item or text, `[out_dim]`."""
        ...

    async def aclose(self) -> None: ...


class EngineLike(Protocol):
    def generate(
        self,
        prompt_embeds: torch.Tensor,
        sampling: SamplingSettings,
        request_id: str,
        lora_name: str | None = None,
        priority: int = 0,
    ) -> AsyncIterator[GenerationDelta]: ...

    def num_unfinished_requests(self) -> int: ...

    async def check_health(self) -> None:
        """Raises when the engine cannot serve (its core process died)."""
        ...

    def shutdown(self) -> None: ...
