"""json_body.loads: the same values as json.loads, with long strings cut out first."""

from __future__ import annotations

import base64
import json
import os

import pytest

from service.http.json_body import LONG_STRING_BYTES, loads

LONG = "y" * (LONG_STRING_BYTES + 10)
DOCUMENTS = [
    {"messages": [{"content": [{"image_url": {"url": "data:;base64," + LONG}}]}], "n": 1},
    {"escaped": 'q"uote' + LONG, "backslash": "\\" + LONG, "unicode": "é" * LONG_STRING_BYTES},
    {"short": "a", "nested": [1, 2.5, None, True, {"k": LONG}], "nul": "\u0000" + LONG},
    {LONG: "a long key"},
    [LONG, LONG[:10], {"x": [LONG]}],
    # a short string shaped like a placeholder stays what it is
    {"looks": "0123456789abcdef:0", "long": LONG},
]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_same_result_as_json_loads(document: object, ensure_ascii: bool) -> None:
    body = json.dumps(document, ensure_ascii=ensure_ascii).encode()
    assert loads(body) == json.loads(body) == document


def test_a_large_data_url_body() -> None:
    media = base64.b64encode(os.urandom(3 * 2**20)).decode()
    body = json.dumps({"url": f"data:image/jpeg;base64,{media}", "model": "m"}).encode()
    assert loads(body)["url"].endswith(media)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "' + b"x" * (LONG_STRING_BYTES + 1),  # unterminated
        b'["' + b"x" * (LONG_STRING_BYTES + 1) + b'",]',  # trailing comma
        b'{"a": "' + b"x" * (LONG_STRING_BYTES + 1) + b'" "b"}',
    ],
)
def test_malformed_bodies_are_json_errors(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(body)


def test_utf16_and_bom_bodies_fall_back_to_json_loads() -> None:
    document = {"a": LONG}
    assert loads(json.dumps(document).encode("utf-16")) == document
    assert loads(b"\xef\xbb\xbf" + json.dumps(document).encode()) == document
