"""CLIP BPE tokenizer against the upstream tokenizer's outputs in the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from encoders.imagebind.tokenizer import CLIPTokenizer, clean_text

FIXTURES = Path(__file__).parents[2] / "fixtures" / "imagebind"


@pytest.fixture(scope="module")
def tok() -> CLIPTokenizer:
    return CLIPTokenizer()


def test_matches_upstream_tokens(tok: CLIPTokenizer) -> None:
    sentences = json.loads((FIXTURES / "preprocess.json").read_text())["text"]["sentences"]
    expected = load_file(FIXTURES / "preprocess.safetensors")
    got = tok(sentences)
    assert got.dtype == expected["text.upstream_tokens"].dtype
    assert got.tolist() == expected["text.upstream_tokens"].tolist()
    assert got.argmax(dim=-1).tolist() == expected["text.upstream_eot_position"].tolist()


def test_matches_tiny_model_input(tok: CLIPTokenizer) -> None:
    sentences = json.loads((FIXTURES / "tiny_config.json").read_text())["text_sentences"]
    io = load_file(FIXTURES / "tiny_io.safetensors")
    assert tok(sentences).tolist() == io["text.input"].tolist()


def test_long_text_keeps_eot(tok: CLIPTokenizer) -> None:
    row = tok("word " * 200)[0]
    assert row.shape == (77,)
    assert row[0].item() == tok.sot_id and row[-1].item() == tok.eot_id
    assert tok("")[0, :3].tolist() == [tok.sot_id, tok.eot_id, 0]


def test_vocab_and_cleaning(tok: CLIPTokenizer) -> None:
    assert tok.vocab_size == 49408 and (tok.sot_id, tok.eot_id) == (49406, 49407)
    assert clean_text("  Caf&amp;amp;É \n\t x ") == "caf&é x"
    assert tok.decode(tok.encode("A Bird, singing!")) == "a bird , singing !"
