"""Settings of media: where the gateway may fetch it, what decoding one item may cost."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from encoders.media.allowlists import AUDIO_CODECS, IMAGE_FORMATS, VIDEO_CODECS
from encoders.media.defaults import (
    MAX_AUDIO_DECODED_BYTES,
    MAX_DECODE_CPU_S,
    MAX_DECODED_BYTES,
    MAX_ITEM_BYTES,
    MAX_VIDEO_DECODE_PIXELS,
)
from service.config.fields import GROUP_CONFIG, StrList


class MediaFetchSettings(BaseSettings):
    """Media fetching: the size of one item, timeouts and the SSRF allow-lists."""

    model_config = GROUP_CONFIG

    max_media_bytes: int = Field(
        MAX_ITEM_BYTES, ge=1, description="Largest single media item, fetched or inline."
    )
    media_connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout for media URLs.")
    media_read_timeout_s: float = Field(
        30.0, gt=0, description="Per read and for the whole download."
    )
    media_max_redirects: int = Field(
        3, ge=0, description="Redirects followed per media URL, each re-checked."
    )
    media_allow_domains: StrList = Field(
        default_factory=list,
        description="Hosts (or `.suffix`) fetched even if they resolve to private addresses.",
    )
    media_allow_networks: StrList = Field(
        default_factory=list, description="CIDR networks exempt from the private-address block."
    )
    media_allowlist_only: bool = Field(
        False, description="Fetch only from the allowed domains/networks."
    )
    media_local_dir: Path | None = Field(
        None, description="Directory served to `file://` media URLs; unset = refused."
    )

    @field_validator("media_allow_domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().rstrip(".") for domain in value]

    @field_validator("media_allow_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(net, strict=False)) for net in value]


class MediaDecodeSettings(BaseSettings):
    """Media decoding: what one item may cost the worker, and which decoders it may reach."""

    model_config = GROUP_CONFIG

    max_decoded_bytes: int = Field(
        MAX_DECODED_BYTES, ge=16 * 2**20, description="Bytes one image or video may decode into."
    )
    max_audio_decoded_bytes: int = Field(
        MAX_AUDIO_DECODED_BYTES,
        ge=8 * 2**20,
        description="Bytes one audio item's windows may hold.",
    )
    max_video_decode_pixels: int = Field(
        MAX_VIDEO_DECODE_PIXELS,
        ge=10**6,
        description="Frames to decode × frame pixels, per video.",
    )
    max_decode_cpu_s: float = Field(
        MAX_DECODE_CPU_S, gt=0, description="CPU seconds one item may take."
    )
    decode_reserve_wait_s: float = Field(
        2.0, ge=0, description="Wait for room in the memory budget before 429 with Retry-After."
    )
    video_codecs: StrList = Field(
        default_factory=lambda: list(VIDEO_CODECS), min_length=1, description="FFmpeg decoders."
    )
    audio_codecs: StrList = Field(
        default_factory=lambda: list(AUDIO_CODECS), min_length=1, description="FFmpeg decoders."
    )
    image_formats: StrList = Field(
        default_factory=lambda: list(IMAGE_FORMATS), min_length=1, description="Pillow formats."
    )
