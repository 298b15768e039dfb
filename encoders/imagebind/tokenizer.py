"""CLIP byte-level BPE tokenizer for the ImageBind text tower.

Behaviour from `tests/fixtures/imagebind/README.md` (upstream ImageBind
`SimpleTokenizer` after commit 1125e1e): ftfy fix, HTML-unescape twice,
collapse whitespace, lowercase; split with the CLIP regex; byte-level BPE with
the 48,894 merges of `bpe_simple_vocab_16e6.txt.gz` (shipped beside this file,
from the `open_clip_torch` wheel). Rows are SOT + at most 75 BPE tokens + EOT,
zero-padded to 77, so EOT (49407, the largest id) is always present and the text
head's argmax pooling finds it. The PandaGPT copy instead cut EOT off texts of
76+ BPE tokens; we follow upstream.
"""

from __future__ import annotations

import gzip
import html
import itertools
from functools import lru_cache
from pathlib import Path

import ftfy
import regex
import torch

VOCAB_PATH = Path(__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
NUM_MERGES = 48894
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
CONTEXT_LENGTH = 77

_SPLIT = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """Reversible map from the 256 byte values to printable characters.

    Bytes that are printable Latin-1 map to themselves; the others are moved to
    code points 256, 257, … in byte order, so BPE never sees whitespace or
    control characters. The vocabulary lists the symbols in this dict's order:
    printable bytes first, then the moved ones."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clean_text(text: str) -> str:
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class CLIPTokenizer:
    """`CLIPTokenizer()(texts) -> LongTensor[N, 77]`."""

    def __init__(self, vocab_path: Path = VOCAB_PATH, context_length: int = CONTEXT_LENGTH):
        with gzip.open(vocab_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : NUM_MERGES + 1]  # line 0 is a version header
        merges = [tuple(line.split()) for line in lines]
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{vocab_path}: expected {NUM_MERGES} merge pairs")
        symbols = list(byte_to_unicode().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}  # type: ignore[misc]
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self.context_length = context_length
        self._cache: dict[str, list[str]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, word: str) -> list[str]:
        """Merge the lowest-ranked adjacent pair until no known pair is left."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = itertools.pairwise(parts)
            best = min(pairs, key=lambda p: self.ranks.get(p, NUM_MERGES))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        if len(self._cache) < 100_000:
            self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without SOT/EOT."""
        table = byte_to_unicode()
        ids: list[int] = []
        for piece in _SPLIT.findall(clean_text(text)):
            word = "".join(table[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(word))
        return ids

    def decode(self, ids: list[int]) -> str:
        table = byte_to_unicode()
        inverse = {c: b for b, c in table.items()}
        text = "".join(self.decoder[i] for i in ids if i not in (0, self.sot_id, self.eot_id))
        raw = bytes(inverse[c] for c in text.replace("</w>", table[ord(" ")]))
        return raw.decode("utf-8", errors="replace").strip()

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            body = self.encode(text)[: self.context_length - 2]  # room for SOT and EOT
            ids = [self.sot_id, *body, self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out
