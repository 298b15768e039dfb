"""The exact token layout of PandaGPT prompts (docs/DESIGN.md §2).

Expected sequences are written from the literal strings of the reference
format, each piece encoded on its own, so a change in how the builder glues
strings together shows up as a different id sequence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from service.worker.projector import Projector
from service.worker.prompt import (
    Conversation,
    PromptBuilder,
    PromptError,
    Turn,
    history_text,
    load_embed_tokens,
)


@pytest.fixture(scope="module")
def tokenizer(demo_model: Path):
    return AutoTokenizer.from_pretrained(str(demo_model / "llm"))


@pytest.fixture(scope="module")
def builder(demo_model: Path, tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer, load_embed_tokens(demo_model / "llm", "cpu", torch.float32))


@pytest.fixture(scope="module")
def projector(demo_model: Path) -> Projector:
    return Projector.load(demo_model / "projector.safetensors", "cpu", torch.float32)


def enc(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def feature(seed: int, dim: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(dim, generator=g), dim=0)


def user(text: str) -> Turn:
    return Turn("user", text)


def test_bos_and_eos_come_from_the_tokenizer(tokenizer, builder: PromptBuilder) -> None:
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)
    assert builder.bos_id == 1


def test_one_image(builder, tokenizer, projector) -> None:
    soft = projector.soft_token([feature(1)])
    out = builder.build(Conversation([user("What is in this image?")]), soft)
    expected = [
        1,
        *enc(tokenizer, "### Human: <Img>"),
        None,
        *enc(tokenizer, "</Img> What is in this image?\n### Assistant:"),
    ]
    assert out.token_ids == expected
    assert out.embeds.shape == (len(expected), builder.hidden)
    soft_row = expected.index(None)
    torch.testing.assert_close(out.embeds[soft_row], soft, rtol=0, atol=0)
    for row, tok in enumerate(expected):
        if tok is not None:
            torch.testing.assert_close(out.embeds[row], builder.embed_tokens[tok], rtol=0, atol=0)


def test_image_and_audio_are_summed_into_one_soft_token(builder, tokenizer, projector) -> None:
    image, audio = feature(1), feature(2)
    soft = projector.soft_token([image, audio])
    # PandaGPT sums the projected items: the bias counts once per item.
    by_hand = projector.project(image[None])[0] + projector.project(audio[None])[0]
    torch.testing.assert_close(soft, by_hand, rtol=0, atol=1e-6)
    out = builder.build(Conversation([user("Describe the picture and the sound.")]), soft)
    assert out.token_ids.count(None) == 1
    assert out.token_ids == [
        1,
        *enc(tokenizer, "### Human: <Img>"),
        None,
        *enc(tokenizer, "</Img> Describe the picture and the sound.\n### Assistant:"),
    ]


def test_multi_turn_history(builder, tokenizer, projector) -> None:
    turns = [
        user("What is in this image?"),
        Turn("assistant", "A dog in a park."),
        user("What colour is it?"),
        Turn("assistant", "It is brown."),
        user("Where is it going?"),
    ]
    out = builder.build(Conversation(turns), projector.soft_token([feature(3)]))
    history = (
        "What is in this image?\n### Assistant: A dog in a park.\n###"
        " Human: What colour is it?\n### Assistant: It is brown.\n###"
        " Human: Where is it going?"
    )
    assert out.token_ids == [
        1,
        *enc(tokenizer, "### Human: <Img>"),
        None,
        *enc(tokenizer, "</Img> " + history + "\n### Assistant:"),
    ]


def test_text_only_is_one_piece_without_img_block(builder, tokenizer) -> None:
    out = builder.build(Conversation([user("Tell me a story.")]), None)
    assert out.token_ids == [1, *enc(tokenizer, "### Human: Tell me a story.\n### Assistant:")]
    assert [p.kind for p in out.pieces] == ["bos", "text"]


def test_system_message_follows_bos(builder, tokenizer, projector) -> None:
    conv = Conversation([user("What is this?")], system="You are a helpful assistant.")
    out = builder.build(conv, projector.soft_token([feature(4)]))
    assert out.token_ids == [
        1,
        *enc(tokenizer, "You are a helpful assistant.\n"),
        *enc(tokenizer, "### Human: <Img>"),
        None,
        *enc(tokenizer, "</Img> What is this?\n### Assistant:"),
    ]
    text_only = builder.build(conv, None)
    assert text_only.token_ids == [
        1,
        *enc(tokenizer, "You are a helpful assistant.\n"),
        *enc(tokenizer, "### Human: What is this?\n### Assistant:"),
    ]


def test_pieces_are_tokenized_apart(builder, tokenizer, projector) -> None:
    # One string would merge across the piece border; the reference does not.
    out = builder.build(Conversation([user("Hi")]), None)
    assert out.token_ids[1:] == enc(tokenizer, "### Human: Hi\n### Assistant:")
    assert out.token_ids[0] == tokenizer.bos_token_id


def test_consecutive_user_messages_are_joined() -> None:
    assert history_text([user("a"), user("b")]) == "a\nb"


@pytest.mark.parametrize(
    "turns",
    [[], [Turn("assistant", "hi")], [user("q"), Turn("assistant", "a")]],
)
def test_bad_turn_orders_are_refused(turns) -> None:
    with pytest.raises(PromptError):
        history_text(turns)


def test_soft_token_shape_is_checked(builder) -> None:
    with pytest.raises(PromptError):
        builder.build(Conversation([user("q")]), torch.zeros(builder.hidden + 1))


def test_embed_table_is_read_alone(demo_model: Path) -> None:
    table = load_embed_tokens(demo_model / "llm", "cpu", torch.float32)
    assert table.dtype == torch.float32 and table.shape[1] == 128
