"""The small service a team would put in front of vLLM's server for PandaGPT's media.

Per chat request with media: decode each item the original way
(`reference.media.preprocess_upstream`), run ImageBind on it at batch 1, project
with `llama_proj` and sum into the soft token, build the prompt's embedding rows
around it (the service's own prompt code, so both sides see the same rows), and
send them as `prompt_embeds` to the server's `/v1/completions`, streaming its text
back as chat completion chunks. A chat without media goes to the server's own
`/v1/chat/completions` as it came (the server renders PandaGPT's prompt from its
chat template). No cache, no batching, no admission: what a first version does.

    python -m bench.peer.front --model-dir DIR --upstream URL --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from transformers import AutoTokenizer

from encoders.imagebind.checkpoint import load_imagebind
from encoders.imagebind.model import ImageBindModel
from encoders.micro_batcher import TOWERS
from reference.media import preprocess_upstream
from service.weights.layout import Manifest, ModelLayout
from service.worker.projector import Projector
from service.worker.prompt import Conversation, PromptBuilder, Turn, load_embed_tokens
from service.worker.sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, TURN_STOP

# Content part type → (modality, how its bytes are given).
MEDIA_PARTS = {
    "image_url": "image",
    "video_url": "video",
    "audio_url": "audio",
    "thermal_url": "thermal",
    "depth_url": "depth",
    "imu_url": "imu",
}


def data_url_bytes(url: str) -> bytes:
    if not url.startswith("data:") or "," not in url:
        raise ValueError("the front takes media as data: URLs only")
    return base64.b64decode(url.split(",", 1)[1])


def split_messages(messages: list[dict[str, Any]]) -> tuple[Conversation, list[tuple[str, bytes]]]:
    """PandaGPT's view of a chat: its text turns, and every media item in it."""
    turns: list[Turn] = []
    system: str | None = None
    media: list[tuple[str, bytes]] = []
    for message in messages:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = []
        for part in parts:
            kind = part["type"]
            if kind == "text":
                texts.append(part["text"])
            elif kind == "input_audio":
                media.append(("audio", base64.b64decode(part["input_audio"]["data"])))
            elif kind in MEDIA_PARTS:
                media.append((MEDIA_PARTS[kind], data_url_bytes(part[kind]["url"])))
        if message["role"] == "system":
            system = "\n".join(texts)
        else:
            turns.append(Turn(message["role"], "\n".join(texts)))
    return Conversation(turns, system), media


class Front:
    def __init__(self, model_dir: Path, upstream: str) -> None:
        layout = ModelLayout(model_dir)
        self.model = Manifest.load(layout.manifest).served_model_name
        self.imagebind: ImageBindModel = load_imagebind(layout.imagebind)
        self.projector = Projector.load(layout.projector, "cpu", torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(layout.llm))
        self.prompts = PromptBuilder(tokenizer, load_embed_tokens(layout.llm, "cpu", torch.float32))
        self.http = httpx.AsyncClient(
            base_url=upstream, timeout=600.0, limits=httpx.Limits(max_connections=256)
        )

    @torch.inference_mode()
    def prompt_embeds(self, conversation: Conversation, media: list[tuple[str, bytes]]) -> str:
        """The prompt's rows with the soft token, as vLLM takes them: base64 of torch.save."""
        features = []
        for modality, data in media:
            tower = TOWERS[modality]
            x = preprocess_upstream(modality, data)
            features.append(self.imagebind.pandagpt_features({tower: x})[tower][0])
        embeds = self.prompts.build(conversation, self.projector.soft_token(features)).embeds
        buffer = io.BytesIO()
        torch.save(embeds.contiguous(), buffer)
        return base64.b64encode(buffer.getvalue()).decode()

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        conversation, media = split_messages(body["messages"])
        sampling = {
            "model": self.model,
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or 256,
            "temperature": body.get("temperature", DEFAULT_TEMPERATURE),
            "top_p": body.get("top_p", DEFAULT_TOP_P),
            "ignore_eos": body.get("ignore_eos", False),
        }
        if not body.get("ignore_eos"):
            sampling["stop"] = [TURN_STOP]
        if not media:
            return await self.relay_chat({**body, **sampling})
        embeds = await asyncio.to_thread(self.prompt_embeds, conversation, media)
        completion = {**sampling, "prompt_embeds": embeds, "stream": True}
        completion["stream_options"] = {"include_usage": True}
        chunks = self.chat_chunks(completion)
        if body.get("stream"):
            return StreamingResponse(chunks, media_type="text/event-stream")
        return JSONResponse(await self.collect(chunks))

    async def relay_chat(self, body: dict[str, Any]) -> Response:
        """A text-only chat: the server's own chat endpoint, streamed back as it comes."""
        upstream = self.http.build_request("POST", "/v1/chat/completions", json=body)
        response = await self.http.send(upstream, stream=True)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for raw in response.aiter_raw():
                    yield raw
            finally:
                await response.aclose()

        return StreamingResponse(
            relay(), status_code=response.status_code, media_type=response.headers["content-type"]
        )

    async def chat_chunks(self, completion: dict[str, Any]) -> AsyncIterator[str]:
        """The server's completion stream, each event rewritten as a chat chunk."""
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        async with self.http.stream("POST", "/v1/completions", json=completion) as response:
            if response.status_code != 200:
                yield f"data: {json.dumps({'error': (await response.aread()).decode()})}\n\n"
                return
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                choices = [
                    {
                        "index": c["index"],
                        "delta": {"role": "assistant", "content": c["text"]},
                        "finish_reason": c.get("finish_reason"),
                    }
                    for c in event.get("choices", [])
                ]
                chunk = {
                    "id": chunk_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self.model,
                    "choices": choices,
                    "usage": event.get("usage"),
                }
                yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    async def collect(self, chunks: AsyncIterator[str]) -> dict[str, Any]:
        text, finish, usage = [], None, None
        async for event in chunks:
            if event.startswith("data: {"):
                chunk = json.loads(event[6:])
                for choice in chunk.get("choices", []):
                    text.append(choice["delta"]["content"])
                    finish = choice["finish_reason"] or finish
                usage = chunk.get("usage") or usage
        message = {"role": "assistant", "content": "".join(text)}
        return {
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def app(front: Front) -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/chat/completions", front.chat, methods=["POST"]),
            Route("/v1/models", front.models),
            Route("/health", front.health),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer.front")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--upstream", required=True, help="vLLM's server, with prompt embeds")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app(Front(args.model_dir, args.upstream)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
