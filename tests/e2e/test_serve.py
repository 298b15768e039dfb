"""`pandagpt serve` end to end: one real process on demo weights, driven by the `openai` client.

The server starts once for the module, with an API key set, its demo dir
pointed at the session's demo weights (so the first-run path runs and finds
them current) and no Redis (the in-memory cache).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from harness.deployments import serve_all_in_one
from harness.local_servers import media_server
from harness.probes import engine_running, metric_value, metrics_text, wait_until_idle
from harness.processes import REPO_ROOT, Process
from tests.e2e import structured
from tests.utils.media import audio_part, data_url, image_part, url_part, user

pytestmark = pytest.mark.slow

API_KEY = "e2e-secret-key-0001"
SHORT = 8  # max_tokens for most calls: demo weights talk gibberish, only the path matters


@pytest.fixture(scope="module")
def served(demo_root: Path, e2e_logs: Path) -> Iterator[tuple[str, Process]]:
    env = {
        "PANDAGPT_DEMO_DIR": str(demo_root),
        "PANDAGPT_API_KEYS": API_KEY,
        # vLLM's compile warm-up costs a minute on a busy CI CPU and changes no service
        # code path; the playground e2e runs `serve` with the compiled default.
        "PANDAGPT_ENFORCE_EAGER": "true",
    }
    with serve_all_in_one(None, e2e_logs, "serve", env, stop_timeout=60) as served:
        yield served.url, served.proc
    code = served.proc.popen.returncode
    assert code == 0, f"serve exited {code} on SIGTERM:\n{served.proc.log_tail()}"


@pytest.fixture(scope="module")
def server(served: tuple[str, Process]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def ask(client: openai.OpenAI, model: str, messages: list[dict], **kw: object) -> str:
    kw.setdefault("max_tokens", SHORT)
    reply = client.chat.completions.create(model=model, messages=messages, **kw)  # type: ignore[arg-type]
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    return reply.choices[0].message.content or ""


# --- each modality, and mixtures ---


def test_image(client: openai.OpenAI, model: str) -> None:
    ask(client, model, [user("What is in this image?", image_part(data_url("bird_image.jpg")))])


def test_audio(client: openai.OpenAI, model: str) -> None:
    ask(client, model, [user("What do you hear?", audio_part("bird_audio.wav"))])


def test_video(client: openai.OpenAI, model: str) -> None:
    ask(client, model, [user("Describe the video.", url_part("video_url", data_url("a.mp4")))])


def test_thermal(client: openai.OpenAI, model: str) -> None:
    thermal = url_part("thermal_url", data_url("190662.jpg"))
    ask(client, model, [user("What is warm here?", thermal)])


def test_image_and_audio_in_one_message(client: openai.OpenAI, model: str) -> None:
    parts = [image_part(data_url("dog_image.jpg")), audio_part("dog_audio.wav")]
    ask(client, model, [user("Do these match?", *parts)])


def test_multi_turn(client: openai.OpenAI, model: str) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        user("What is this?", image_part(data_url("car_image.jpg"))),
        {"role": "assistant", "content": "A car."},
        user("What colour is it?"),
    ]
    ask(client, model, messages)


def test_text_only(client: openai.OpenAI, model: str) -> None:
    ask(client, model, [{"role": "user", "content": "Hello there"}])


# --- generation parameters ---


def test_streaming_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[user("Tell me about this.", image_part(data_url("bird_image.jpg")))],
        max_tokens=SHORT,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and chunks[-1].usage is not None and not chunks[-1].choices
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert usage[0].completion_tokens >= 1
    assert usage[0].total_tokens == usage[0].prompt_tokens + usage[0].completion_tokens
    assert isinstance(text, str)


def test_n_choices(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(
        model=model, messages=[user("Hi")], max_tokens=SHORT, n=2, temperature=1.0, top_p=1.0
    )
    assert sorted(c.index for c in reply.choices) == [0, 1]


def test_stop_sequence(client: openai.OpenAI, model: str) -> None:
    messages = [user("Count for me.")]
    full = ask(client, model, messages, temperature=0.0, max_tokens=24)
    if len(full.strip()) < 4:
        pytest.skip(f"greedy demo output too short to cut: {full!r}")
    stop = full.strip()[2:4]
    cut = ask(client, model, messages, temperature=0.0, max_tokens=24, stop=[stop])
    assert cut == full[: full.index(stop)]


def test_logprobs_with_and_without_streaming(client: openai.OpenAI, model: str) -> None:
    kw: dict = {
        "model": model,
        "messages": [user("What is in this image?", image_part(data_url("dog_image.jpg")))],
        "max_tokens": 6,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 3,
        "extra_body": {"ignore_eos": True},  # exactly 6 tokens, no stop string to trim
    }
    reply = client.chat.completions.create(**kw)
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert reply.usage is not None and len(tokens) == reply.usage.completion_tokens == 6
    for token in tokens:
        assert token.logprob <= 0.0 and token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == 3
        ranked = [t.logprob for t in token.top_logprobs]
        assert ranked == sorted(ranked, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert token.logprob == pytest.approx(ranked[0])
        assert token.token == token.top_logprobs[0].token
    streamed = [
        t
        for chunk in client.chat.completions.create(**kw, stream=True)
        if chunk.choices and chunk.choices[0].logprobs
        for t in chunk.choices[0].logprobs.content or []
    ]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [
        (t.token, round(t.logprob, 4)) for t in tokens
    ]
    plain = client.chat.completions.create(**{**kw, "logprobs": False, "top_logprobs": None})
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == choice.message.content


def test_top_logprobs_without_logprobs_is_400(client: openai.OpenAI, model: str) -> None:
    for kw in ({"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21}):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, messages=[user("Hi")], max_tokens=2, **kw)
        assert isinstance(info.value.body, dict) and info.value.body["param"] == "top_logprobs"


def test_seed_reproducible(client: openai.OpenAI, model: str) -> None:
    kw: dict[str, object] = {"temperature": 1.0, "top_p": 1.0, "seed": 1234, "max_tokens": 16}
    first = ask(client, model, [user("Say something.")], **kw)
    second = ask(client, model, [user("Say something.")], **kw)
    assert first == second


# --- embeddings and models ---


# --- structured outputs and tool calls (checks in tests/e2e/structured.py) ---


def test_json_schema_with_media_n2_logprobs(client: openai.OpenAI, model: str) -> None:
    structured.check_json_schema(client, model)


def test_json_schema_streamed(client: openai.OpenAI, model: str) -> None:
    structured.check_json_schema_streamed(client, model)


def test_json_object(client: openai.OpenAI, model: str) -> None:
    structured.check_json_object(client, model)


def test_named_tool_call(client: openai.OpenAI, model: str) -> None:
    structured.check_named_tool_call(client, model)


def test_named_tool_call_streamed(client: openai.OpenAI, model: str) -> None:
    structured.check_named_tool_call_streamed(client, model)


def test_required_tool_calls_streamed(client: openai.OpenAI, model: str) -> None:
    structured.check_required_tool_calls_streamed(client, model)


def test_tool_result_follow_up(client: openai.OpenAI, model: str) -> None:
    structured.check_tool_result_follow_up(client, model)


def test_uncompilable_schema_unknown_tool_and_limits_are_400(
    client: openai.OpenAI, model: str
) -> None:
    structured.check_refusals(client, model)


def test_embeddings(client: openai.OpenAI, model: str) -> None:
    image = image_part(data_url("bird_image.jpg"))
    inputs = ["a bird", "a dog", image]
    result = client.embeddings.create(model=model, input=inputs)  # type: ignore[arg-type]
    vectors = [d.embedding for d in sorted(result.data, key=lambda d: d.index)]
    assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1
    for vector in vectors:  # ImageBind embeddings are L2-normalised
        assert abs(sum(x * x for x in vector) ** 0.5 - 1.0) < 1e-3
    assert vectors[0] != vectors[1] != vectors[2]


def test_models(client: openai.OpenAI, model: str) -> None:
    ids = [m.id for m in client.models.list().data]
    assert model in ids


def test_metrics_cover_worker_and_gateway(server: str) -> None:
    text = metrics_text(server)
    for modality in ("image", "audio", "video", "thermal"):
        assert metric_value(text, "pandagpt_encoder_batch_size_count", modality=modality) >= 1
        assert metric_value(text, "pandagpt_encode_latency_seconds_count", modality=modality) >= 1
    assert metric_value(text, "pandagpt_cache_misses_total", modality="image") >= 1
    assert metric_value(text, "pandagpt_cache_hits_total", modality="image") >= 1  # bird, again
    assert metric_value(text, "pandagpt_queue_time_seconds_count") >= 1
    assert metric_value(text, "pandagpt_time_to_first_token_seconds_count") >= 1
    assert metric_value(text, "pandagpt_generation_tokens_total") >= 1


# --- errors ---


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[user("Hi")])
    assert info.value.status_code == 404
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_bad_media_is_400_with_reason(client: openai.OpenAI, model: str) -> None:
    junk = "data:image/jpeg;base64,bm90IGFuIGltYWdl"  # "not an image"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[user("Hi", image_part(junk))])
    body = info.value.body
    assert isinstance(body, dict) and str(body["code"]).startswith("media_"), body
    assert body["type"] == "invalid_request_error"


def test_wrong_type_is_400_with_param(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model,
            messages=[user("Hi")],
            max_tokens="many",  # type: ignore[arg-type]
        )
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "max_tokens", body


def test_prompt_over_the_context_is_400(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[user("word " * 3000)], max_tokens=4)
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded", body


def test_missing_key_is_401(server: str, model: str) -> None:
    anonymous = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong-key-9999", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        anonymous.chat.completions.create(model=model, messages=[user("Hi")])
    assert info.value.status_code == 401
    bare = httpx.post(f"{server}/v1/chat/completions", json={"model": model, "messages": []})
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "authentication_error"


def test_private_media_url_is_refused(client: openai.OpenAI, model: str) -> None:
    media_dir = Path(__file__).resolve().parents[1] / "fixtures" / "media"
    with media_server(media_dir) as base, pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=model, messages=[user("Hi", image_part(f"{base}/bird_image.jpg"))]
        )
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "media_blocked_address", body


# --- disconnects ---


def test_disconnect_aborts_generation(server: str, client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[user("Talk for a long time.")],
        max_tokens=1000,  # as long as the 1024-token context allows, four times over
        n=4,
        stream=True,
        extra_body={"ignore_eos": True},  # no early stop: seconds of engine work
    )
    next(chunk for chunk in stream if chunk.choices)
    busy = engine_running(server)
    stream.close()
    assert busy >= 1, "the engine was not generating while the answer streamed"
    assert wait_until_idle(server) == 0


# --- vLLM's own benchmark client (what a team measures a server with) ---


def test_vllm_benchmark_client_completes_text_and_image_workloads(
    server: str, model: str, demo_root: Path, tmp_path: Path
) -> None:
    """`vllm.benchmarks.serve`, backend `openai-chat`: the `random` text workload and
    `random-mm` (one 224×224 image a request) each complete every request."""
    env = {**os.environ, "OPENAI_API_KEY": API_KEY}
    driver = [sys.executable, "-m", "tests.e2e.vllm_bench_client"]
    args = [server, model, str(demo_root / "model" / "llm"), str(tmp_path)]
    done = subprocess.run(
        [*driver, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for dataset in ("random", "random-mm"):
        result = json.loads((tmp_path / f"{dataset}.json").read_text())
        assert result["completed"] == result["num_prompts"] == 6, (dataset, result["failed"])
        assert result["failed"] == 0 and result["total_output_tokens"] > 0


# --- shutdown (last: it stops the module's server) ---


def test_sigterm_lets_the_stream_in_flight_finish(
    served: tuple[str, Process], client: openai.OpenAI, model: str
) -> None:
    _, proc = served
    stream = client.chat.completions.create(
        model=model,
        messages=[user("Keep going.")],
        max_tokens=600,  # seconds of engine work: still generating when SIGTERM lands
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = iter(stream)
    next(chunks)
    assert engine_running(served[0]) == 1
    proc.popen.send_signal(signal.SIGTERM)  # graceful: no new connections, this one finishes
    rest = list(chunks)
    usage = rest[-1].usage
    assert usage is not None and usage.completion_tokens == 600
    assert proc.popen.wait(60) == 0, proc.log_tail()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{served[0]}/health/live", timeout=2)
