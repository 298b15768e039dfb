"""The peers of `pandagpt bench peer` see what the service sees.

- vLLM's own server, with the benchmark's chat template, gets the very tokens the
  service builds for a text-only chat, and so gives its greedy replies;
- the assembled peer (that server with prompt embeddings behind bench/peer/front.py)
  gives the service's greedy replies on image, audio, video and multi-turn chats too,
  and vLLM's benchmark client completes its image requests through it.
No timing is asserted: the comparison's figures are the benchmark's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from bench.peer.client import client_argv, run_client
from bench.peer.compare import greedy_replies, reply_chats, same_reply
from bench.peer.servers import SERVICE_ENGINE, TEMPLATE, assembled_peer, served_name
from harness.deployments import serve_all_in_one
from service.worker.prompt import Conversation, PromptBuilder, Turn

CONVERSATIONS = [
    Conversation([Turn("user", "Tell me a story about a cat.")]),
    Conversation([Turn("user", "Hi.")], system="You are a helpful assistant."),
    Conversation(
        [
            Turn("user", "What is in this image?"),
            Turn("assistant", "A dog in a park."),
            Turn("user", "What colour is it?"),
            Turn("assistant", "Brown."),
            Turn("user", "Where is it going?"),
        ]
    ),
    Conversation(
        [
            Turn("user", "First line."),
            Turn("user", "Second line."),
            Turn("assistant", "One."),
            Turn("assistant", "Two."),
            Turn("user", "And?"),
        ]
    ),
]


def as_messages(conversation: Conversation) -> list[dict[str, str]]:
    system = [{"role": "system", "content": conversation.system}] if conversation.system else []
    return system + [{"role": t.role, "content": t.text} for t in conversation.turns]


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one", "system", "turns", "merged"])
def test_template_gives_the_services_text_prompt_tokens(
    demo_model_dir: Path, conversation: Conversation
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_dir / "llm"))
    builder = PromptBuilder(tokenizer, torch.zeros(1, 1))
    expected = [i for piece in builder.pieces(conversation, False) for i in piece.token_ids]
    rendered = tokenizer.apply_chat_template(
        as_messages(conversation), chat_template=TEMPLATE.read_text(), tokenize=False
    )
    # vLLM's chat endpoint tokenizes the rendered text without adding special tokens.
    assert tokenizer.encode(rendered, add_special_tokens=False) == expected


@pytest.fixture(scope="module")
def peer_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peer-logs")


@pytest.fixture(scope="module")
def service_url(demo_model_dir: Path, peer_logs: Path) -> Iterator[str]:
    with serve_all_in_one(demo_model_dir, peer_logs, "serve-peer", SERVICE_ENGINE) as served:
        yield served.url


@pytest.mark.slow
def test_peers_give_the_services_greedy_replies(
    demo_model_dir: Path, peer_logs: Path, service_url: str, tmp_path: Path
) -> None:
    """Text-only chats pass the front untouched to vLLM's chat endpoint and its template
    (the text peer of the benchmark); chats with media go as prompt embeddings."""
    model = served_name(demo_model_dir)
    chats = reply_chats("text") + reply_chats("mixed")
    ours = greedy_replies(service_url, model, chats)
    with assembled_peer(demo_model_dir, peer_logs) as peer:
        theirs = greedy_replies(peer.url, peer.model, chats)
        result = tmp_path / "image.json"
        argv = client_argv(
            peer.url,
            peer.model,
            str(demo_model_dir / "llm"),
            "image",
            num_prompts=4,
            max_concurrency=2,
            request_rate=float("inf"),
            input_len=16,
            output_len=8,
            goodput=[],
            result=result,
        )
        run = run_client(argv, result, tmp_path / "client.log")
    assert [same_reply(a, b) for a, b in zip(ours, theirs, strict=True)] == [True] * len(chats)
    assert run.result["completed"] == 4 and run.client_cpu_s > 0
