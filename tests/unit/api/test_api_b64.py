"""Sliced base64 decoding: the bytes base64 would give, and the same refusals."""

from __future__ import annotations

import base64
import binascii
import os

import pytest

from service.api.media import b64


@pytest.fixture(autouse=True)
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(b64, "SLICE_CHARS", 8)  # many slices, and groups across their edges


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 6, 7, 31, 64, 100])
def test_decodes_like_base64(size: int) -> None:
    raw = os.urandom(size)
    text = base64.b64encode(raw).decode()
    assert b64.decode(text) == raw
    assert b64.decode("\n".join(text[i : i + 7] for i in range(0, len(text), 7))) == raw
    assert b64.decode("data:x;base64," + text, start=14) == raw
    assert b64.decoded_size("data:x;base64," + text, start=14) >= size


@pytest.mark.parametrize("text", ["abc", "ab=c", "a===", "ab!d", "=abc", "YQ==YQ==", "YWJj\x00"])
def test_refuses_what_is_not_base64(text: str) -> None:
    with pytest.raises((binascii.Error, ValueError)):
        b64.decode(text)
