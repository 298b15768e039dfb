"""POST /v1/embeddings (extension) with the openai client."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from service.contract import MediaItem
from tests.unit.api.conftest import Gateway
from tests.utils import media_bytes
from tests.utils.fake_worker import MODEL


def test_string_and_list_inputs(gateway: Gateway) -> None:
    one = gateway.client().embeddings.create(model=MODEL, input="a dog")
    assert one.object == "list" and one.model == MODEL
    assert one.data[0].embedding == [1.0, 0.0, 0.0, 0.0]
    many = gateway.client().embeddings.create(model=MODEL, input=["a", "b", "c"])
    assert [d.index for d in many.data] == [0, 1, 2]
    assert many.usage.prompt_tokens == 3
    assert gateway.worker.embed_jobs[-1].inputs == ["a", "b", "c"]


def test_media_parts_and_base64_format(gateway: Gateway) -> None:
    png = media_bytes.png()
    parts = [
        {"type": "image_url", "image_url": {"url": media_bytes.data_url(png, "image/png")}},
        {"type": "text", "text": "a dog"},
        "a cat",
    ]
    response = httpx.post(
        f"{gateway.url}/v1/embeddings",
        json={"model": MODEL, "input": parts, "encoding_format": "base64"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    vector = struct.unpack("<4f", base64.b64decode(data[0]["embedding"]))
    assert vector == (0.0, 1.0, 0.0, 0.0)
    inputs = gateway.worker.embed_jobs[-1].inputs
    assert isinstance(inputs[0], MediaItem) and inputs[0].data == png
    assert inputs[1:] == ["a dog", "a cat"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [1, 2, 3]}, "input.0"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 3}, "dimensions"),
        ({"input": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]},
         "input.0"),
    ],
)  # fmt: skip
def test_embedding_errors(gateway: Gateway, body: dict, param: str) -> None:
    response = httpx.post(f"{gateway.url}/v1/embeddings", json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_model(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        gateway.client().embeddings.create(model="nope", input="x")
