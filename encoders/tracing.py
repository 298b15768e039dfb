"""The tracing hooks the encoder calls, as a protocol the service implements.

This package imports nothing of the service, nor OpenTelemetry: the service passes
an `EncoderTracer` in (`service.telemetry.encoder_tracer()`), or None, and then
nothing is traced. The preprocessing stage opens one span per item, the batch
scheduler one per batched forward, linked to the requests whose items it holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class EncoderTracer(Protocol):
    """Tracing hooks (service.telemetry provides them when tracing is on)."""

    def span(
        self, name: str, attributes: Mapping[str, str | int | float]
    ) -> contextlib.AbstractContextManager[Any]:
        """A span in the caller's trace, current inside the block."""
        ...

    def capture(self) -> object:
        """The caller's trace position, taken when its item is queued."""
        ...

    def linked_span(
        self, name: str, attributes: Mapping[str, str | int | float], callers: Sequence[object]
    ) -> contextlib.AbstractContextManager[Any]:
        """A span for work done for all `callers` (what `capture` returned) at once."""
        ...
