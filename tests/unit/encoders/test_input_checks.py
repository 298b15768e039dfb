"""Per-item checks before batching: shapes, dtypes, modality names, text tokens."""

from __future__ import annotations

import pytest
import torch

from encoders.imagebind.config import ImageBindConfig
from encoders.input_checks import TextTokens, checked_item

CONFIG = ImageBindConfig()
CPU = torch.device("cpu")


def test_the_batch_dim_of_one_is_dropped() -> None:
    item = checked_item(CONFIG, CPU, "imu", torch.zeros(1, 6, 2000))
    assert item.shape == (6, 2000)
    clips = checked_item(CONFIG, CPU, "audio", torch.zeros(5, 1, 128, 204))
    assert clips.shape == (5, 1, 128, 204)  # any clip count


@pytest.mark.parametrize(
    ("modality", "x", "message"),
    [
        ("image", torch.zeros(3, 100, 100), "expected [3, 224, 224]"),
        ("image", torch.zeros(2, 3, 224, 224), "expected 3 dims"),
        ("text", torch.zeros(77), "int64 token ids"),
        ("depth", torch.zeros(1, 224, 224, dtype=torch.long), "floating point"),
        ("smell", torch.zeros(3), "unknown modality 'smell'"),
    ],
)
def test_what_a_modality_does_not_take_is_refused(modality: str, x, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        checked_item(CONFIG, CPU, modality, x)


def test_text_becomes_the_context_length_of_token_ids() -> None:
    tokens = TextTokens()("a dog barking")
    assert tokens.shape == (CONFIG.context_length,) and tokens.dtype == torch.long
