"""Default caps on one media item (plain data).

One source for the numbers that both `MediaLimits` and the service's settings
start from, so a library user and a server get the same defaults. The gateway's
settings import this module, so it imports nothing.
"""

from __future__ import annotations

#: Raw bytes of one media item, fetched or inline (`PANDAGPT_MAX_MEDIA_BYTES`).
MAX_ITEM_BYTES = 32 * 2**20
#: Bytes one image or video may decode into, reserved before decoding.
MAX_DECODED_BYTES = 256 * 2**20
#: Bytes one audio item's clip windows and resampler may hold.
MAX_AUDIO_DECODED_BYTES = 64 * 2**20
#: Frames decoded × frame pixels, per video.
MAX_VIDEO_DECODE_PIXELS = 4_000_000_000
#: CPU seconds one item's decoding may take.
MAX_DECODE_CPU_S = 3.0
