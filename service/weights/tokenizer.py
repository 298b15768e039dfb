"""A small LLaMA-style tokenizer trained locally, for demo weights.

Real Vicuna ships a SentencePiece BPE with byte fallback, `<unk>`/`<s>`/`</s>`
at ids 0/1/2 and a `▁` word marker prepended to the first word. The demo
tokenizer copies that structure (so `transformers.AutoTokenizer` and vLLM load
it as a `LlamaTokenizer`) but learns its merges from a short built-in corpus
with the `tokenizers` library: nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2 as in LLaMA
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))  # byte fallback pieces

# Short English text in the register of the PandaGPT demo conversations.
CORPUS = """\
### Human: <Img> </Img> What is in this image? Describe it in detail.
### Assistant: The image shows a dog running across a green park on a sunny day.
### Human: What sound does the animal make?
### Assistant: The bird is singing a bright song on a tree branch at sunrise.
A small bird sits on the branch of a tall tree. The sky is blue and the sun is warm.
A red car drives along a wet road in the city at night, with lights on both sides.
The dog barks loudly at the children who play with a ball near the river.
In the video a man walks along the beach while waves roll over the sand.
The thermal image shows a person standing in a cold room; the face looks bright.
This depth map shows a chair close to the camera and a wall far behind it.
Can you tell me a story about the picture? Once upon a time there was a cat.
The weather is cold today, so people wear coats, hats and long scarves.
Please explain what happens in the audio clip and why it may be important.
There are two people, three cars, four trees and one large building in the scene.
I think the image was taken in the morning because the light is soft and low.
You are a helpful assistant. Answer the question with care and in simple words.
What colour is the sky? The sky is blue, the grass is green and the road is grey.
Where is the bird? The bird is on the left side of the picture, near the water.
How many animals are there? There are three animals: a dog, a cat and a horse.
The music is loud and fast; it sounds like a band playing at a summer festival.
"""


def train_demo_tokenizer(out_dir: Path, vocab_size: int = 1000) -> Tokenizer:
    """Train on CORPUS and write tokenizer.json + tokenizer_config.json into out_dir."""
    # Train word-level merges (split on ▁), then serve with split=False like LLaMA.
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    trainer_tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]

    # Renumber: specials, then the 256 byte pieces (as in LLaMA), then learned pieces.
    vocab: dict[str, int] = {}
    for piece in (*SPECIAL_TOKENS, *BYTE_TOKENS):
        vocab[piece] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges: list[tuple[str, str]] = []
    for merge in learned["merges"]:  # "a b" strings or [a, b] pairs, by tokenizers version
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merges.append((left, right))

    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first", split=False
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1),
        ]
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))

    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    return tok
