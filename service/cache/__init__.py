"""Embedding cache: media sha256 → encoder feature (memory LRU or Redis)."""

from service.cache.base import CacheKey, EmbeddingCache, pack_f32, unpack_f32
from service.cache.factory import create_cache

__all__ = ["CacheKey", "EmbeddingCache", "create_cache", "pack_f32", "unpack_f32"]
