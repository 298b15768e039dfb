"""Conversation → PandaGPT prompt embeddings (docs/DESIGN.md §2, exactly as the reference).

    [BOS] + system + "\\n" + "### Human: <Img>" + [soft token] + "</Img> " + history
          + "\\n### Assistant:"

history = q1 + "\\n### Assistant: " + a1 + "\\n###" + " Human: " + q2 + …; a
text-only chat is the one piece "### Human: " + history + "\\n### Assistant:".
Each text piece is tokenized on its own with `add_special_tokens=False` (the
pieces do not merge across their borders, which is why this is not one string).
Token embeddings come from the Vicuna `embed_tokens` table alone, read with
`safe_open`; the LLM itself lives in vLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import torch

from service.contract import ChatJob
from service.weights.llm_io import read_tensor

EMBED_KEY = "model.embed_tokens.weight"
HUMAN_IMG_OPEN = "### Human: <Img>"
IMG_CLOSE = "</Img> "
HUMAN = "### Human: "
ASSISTANT_CUE = "\n### Assistant:"


class TokenizerLike(Protocol):
    bos_token_id: int | None
    eos_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Conversation:
    """A chat as PandaGPT sees it: media are summed into one soft token elsewhere."""

    turns: Sequence[Turn]
    system: str | None = None

    @classmethod
    def of_job(cls, job: ChatJob) -> Conversation:
        """The job's text turns; its media go into the soft token instead."""
        turns: list[Turn] = []
        for turn in job.turns:
            turns.append(Turn("user", turn.user.text))
            if turn.assistant is not None:
                turns.append(Turn("assistant", turn.assistant))
        return cls(turns=turns, system=job.system)


@dataclass(frozen=True)
class PromptPiece:
    kind: Literal["bos", "text", "media"]
    text: str  # "" for bos/media
    token_ids: tuple[int, ...]  # empty for media


@dataclass
class PromptEmbeds:
    embeds: torch.Tensor  # [T, hidden]
    pieces: list[PromptPiece] = field(default_factory=list)

    @property
    def token_ids(self) -> list[int | None]:
        """The layout row by row: a token id, or None at the soft token."""
        out: list[int | None] = []
        for piece in self.pieces:
            out.extend(piece.token_ids if piece.kind != "media" else [None])
        return out

    @property
    def num_tokens(self) -> int:
        return int(self.embeds.shape[0])


class PromptError(ValueError):
    """The conversation cannot be put into PandaGPT's prompt format."""


def history_text(turns: Sequence[Turn]) -> str:
    """PandaGPT's history string; consecutive same-role messages are joined by newlines."""
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            merged[-1] = Turn(turn.role, merged[-1].text + "\n" + turn.text)
        else:
            merged.append(turn)
    if not merged or merged[0].role != "user":
        raise PromptError("the conversation must start with a user message")
    if merged[-1].role != "user":
        raise PromptError("the conversation must end with a user message")
    text = ""
    for i, turn in enumerate(merged):
        if turn.role == "user":
            text += turn.text if i == 0 else " Human: " + turn.text
        else:
            text += "\n### Assistant: " + turn.text + "\n###"
    return text


def load_embed_tokens(
    llm_dir: Path, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """Only the [vocab, hidden] embedding table, not the whole LLM."""
    return read_tensor(llm_dir, EMBED_KEY).to(device=device, dtype=dtype)


class PromptBuilder:
    def __init__(self, tokenizer: TokenizerLike, embed_tokens: torch.Tensor) -> None:
        if tokenizer.bos_token_id is None:
            raise ValueError("the tokenizer defines no BOS token")
        self.tokenizer = tokenizer
        self.embed_tokens = embed_tokens  # [vocab, hidden]
        self.bos_id = int(tokenizer.bos_token_id)

    @property
    def hidden(self) -> int:
        return int(self.embed_tokens.shape[1])

    def _text(self, text: str) -> PromptPiece:
        ids = tuple(self.tokenizer.encode(text, add_special_tokens=False))
        return PromptPiece("text", text, ids)

    def pieces(self, conversation: Conversation, with_media: bool) -> list[PromptPiece]:
        history = history_text(conversation.turns)
        pieces = [PromptPiece("bos", "", (self.bos_id,))]
        if conversation.system:
            pieces.append(self._text(conversation.system + "\n"))
        if with_media:
            pieces.append(self._text(HUMAN_IMG_OPEN))
            pieces.append(PromptPiece("media", "", ()))
            pieces.append(self._text(IMG_CLOSE + history + ASSISTANT_CUE))
        else:
            pieces.append(self._text(HUMAN + history + ASSISTANT_CUE))
        return pieces

    def build(self, conversation: Conversation, soft_token: torch.Tensor | None) -> PromptEmbeds:
        """Embeddings [T, hidden] in the table's dtype/device, with the soft token spliced in."""
        pieces = self.pieces(conversation, with_media=soft_token is not None)
        rows: list[torch.Tensor] = []
        for piece in pieces:
            if piece.kind == "media":
                assert soft_token is not None
                if soft_token.shape != (self.hidden,):
                    raise PromptError(
                        f"soft token of shape {tuple(soft_token.shape)}, expected ({self.hidden},)"
                    )
                rows.append(soft_token.to(self.embed_tokens).unsqueeze(0))  # [1, C]
            elif piece.token_ids:
                ids = torch.tensor(piece.token_ids, device=self.embed_tokens.device)
                rows.append(self.embed_tokens[ids])  # [t, C]
        return PromptEmbeds(torch.cat(rows, dim=0), pieces)
