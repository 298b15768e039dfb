"""Settings: one `Settings` object made of one group per concern (see `settings`)."""

from service.config.gateway import (
    PLACEHOLDER_KEYS,
    AdmissionSettings,
    AuthSettings,
    HTTPSettings,
    ProcessSettings,
    RequestLimitSettings,
    SamplingDefaultSettings,
    WorkerPoolSettings,
)
from service.config.media import MediaDecodeSettings, MediaFetchSettings
from service.config.settings import Settings
from service.config.storage import CacheSettings, RedisSettings, ResponseStoreSettings
from service.config.worker import EncoderSettings, EngineSettings, ModelSettings

__all__ = [
    "PLACEHOLDER_KEYS",
    "AdmissionSettings",
    "AuthSettings",
    "CacheSettings",
    "EncoderSettings",
    "EngineSettings",
    "HTTPSettings",
    "MediaDecodeSettings",
    "MediaFetchSettings",
    "ModelSettings",
    "ProcessSettings",
    "RedisSettings",
    "RequestLimitSettings",
    "ResponseStoreSettings",
    "SamplingDefaultSettings",
    "Settings",
    "WorkerPoolSettings",
]
