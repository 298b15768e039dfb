"""The batch loop over the real gateway app (in process, as `batch` without --url runs
it), with a scripted worker behind it: lines, resumption, signals, usage errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.api import create_app
from service.batch.client import RetryPolicy
from service.batch.format import UsageError
from service.batch.inprocess import asgi_client
from service.batch.runner import ClientFactory, RunOptions, plan, run
from service.cli import main
from service.config import Settings
from service.contract import ChatEvent, ChatJob
from tests.utils.fake_worker import ScriptedWorker, echo_chat
from tests.utils.media import MEDIA_DIR


def chat_line(custom_id: str, text: str, *parts: dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "text", "text": text}, *parts]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def image(path: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": path}}


def write_input(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def read_output(path: Path) -> dict[str, dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "only whole lines"
    lines = [json.loads(line) for line in raw.splitlines()]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(by_id) == len(lines), "every custom_id once"
    return by_id


def connect_to(worker: ScriptedWorker, **settings: Any) -> ClientFactory:
    app = create_app(
        Settings(**{"enable_playground": False, "log_json": False, **settings}), worker
    )
    return lambda: asgi_client(app)


@pytest.fixture
def batch(tmp_path: Path) -> RunOptions:
    (tmp_path / "broken.jpg").write_bytes(b"this is not an image")
    lines = [
        chat_line("text", "hello there"),
        chat_line("bird", "what is it", image(str(MEDIA_DIR / "bird_image.jpg"))),
        chat_line("broken", "and this", image("broken.jpg")),
        chat_line("missing", "and that", image("missing.jpg")),
        {
            "custom_id": "emb",
            "url": "/v1/embeddings",
            "body": {"input": ["a dog", image(str(MEDIA_DIR / "dog_image.jpg"))]},
        },
    ]
    return RunOptions(
        input=write_input(tmp_path / "in.jsonl", lines),
        output=tmp_path / "out.jsonl",
        concurrency=3,
        policy=RetryPolicy(max_attempts=2, backoff_s=0.01),
    )


async def test_one_line_per_request_then_resume_sends_nothing(batch: RunOptions) -> None:
    worker = ScriptedWorker()
    summary = await run(plan(batch), batch, connect_to(worker))
    out = read_output(batch.output)
    assert set(out) == {"text", "bird", "broken", "missing", "emb"}
    assert out["text"]["error"] is None
    assert (
        out["text"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: hello there"
    )
    assert out["bird"]["response"]["status_code"] == 200
    assert out["bird"]["response"]["request_id"]
    assert len(worker.jobs[0].media()) + len(worker.jobs[1].media()) == 1  # the bird's image
    assert len(out["emb"]["response"]["body"]["data"]) == 2
    # The service refused the broken file; the missing one never left this process.
    assert out["broken"]["response"]["status_code"] == 400
    assert out["broken"]["error"]["code"] == "media_unsupported_format"
    assert out["missing"]["response"] is None
    assert out["missing"]["error"]["code"] == "file_not_found"
    assert (summary.sent, summary.succeeded, summary.exit_code) == (5, 3, 1)

    again = await run(plan(batch), batch, connect_to(worker))
    assert (again.skipped, again.sent, again.exit_code) == (5, 0, 1)
    assert len(worker.jobs) == 2 and len(worker.embed_jobs) == 1  # nothing redone
    assert read_output(batch.output) == out


async def test_retry_errors_redoes_only_the_failed_lines(batch: RunOptions, tmp_path: Path) -> None:
    worker = ScriptedWorker()
    await run(plan(batch), batch, connect_to(worker))
    (tmp_path / "missing.jpg").write_bytes((MEDIA_DIR / "car_image.jpg").read_bytes())
    retry = RunOptions(**{**batch.__dict__, "retry_errors": True})
    summary = await run(plan(retry), retry, connect_to(worker))
    assert (summary.skipped, summary.sent, summary.succeeded) == (3, 2, 1)
    out = read_output(batch.output)
    assert out["missing"]["error"] is None and out["broken"]["error"] is not None
    assert summary.output_failed == 1 and summary.exit_code == 1


async def test_sigint_cancels_what_is_in_flight_and_leaves_whole_lines(tmp_path: Path) -> None:
    async def hang_on_request(job: ChatJob) -> AsyncIterator[ChatEvent]:
        if job.turns[-1].user.text == "hang":
            await asyncio.Event().wait()
        async for event in echo_chat(job):
            yield event

    options = RunOptions(
        input=write_input(
            tmp_path / "in.jsonl",
            [chat_line("a", "one"), chat_line("h", "hang"), chat_line("b", "two")],
        ),
        output=tmp_path / "out.jsonl",
        concurrency=2,
    )
    worker = ScriptedWorker(chat=hang_on_request)
    task = asyncio.create_task(run(plan(options), options, connect_to(worker)))
    for _ in range(500):
        lines = options.output.read_bytes().count(b"\n") if options.output.exists() else 0
        if lines == 2 and worker.running == 1:
            break
        await asyncio.sleep(0.01)
    assert lines == 2 and worker.running == 1, "two lines done and the hanging one in flight"
    os.kill(os.getpid(), signal.SIGINT)
    summary = await asyncio.wait_for(task, 10)
    assert summary.stopped_by == signal.SIGINT and summary.exit_code == 130
    assert worker.aborted.is_set()  # the in-flight generation was closed, not left running
    assert set(read_output(options.output)) == {"a", "b"}

    resumed = await run(plan(options), options, connect_to(ScriptedWorker()))
    assert (resumed.skipped, resumed.sent, resumed.exit_code) == (2, 1, 0)
    assert set(read_output(options.output)) == {"a", "b", "h"}


async def test_a_refused_preflight_is_a_usage_error_before_any_line(batch: RunOptions) -> None:
    worker = ScriptedWorker()
    with pytest.raises(UsageError, match="GET /v1/models"):
        await run(plan(batch), batch, connect_to(worker, api_keys=["sk-needed-0123456789"]))
    assert not batch.output.exists() and worker.jobs == []


def test_cli_usage_errors_exit_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = chat_line("a", "hi")
    dup = write_input(tmp_path / "dup.jsonl", [good, good])
    unreachable = ["--url", "http://127.0.0.1:9", "--max-attempts", "1"]
    assert main(["batch", str(dup), "-o", str(tmp_path / "o.jsonl"), *unreachable]) == 2
    assert "duplicate custom_id 'a'" in capsys.readouterr().err
    ok = write_input(tmp_path / "ok.jsonl", [good])
    assert main(["batch", str(ok), "-o", str(tmp_path / "o.jsonl"), *unreachable]) == 2
    assert "check --url" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    ftp = ["--url", "ftp://host"]
    assert main(["batch", str(ok), "-o", str(tmp_path / "o.jsonl"), *ftp]) == 2
    assert main(["batch", str(ok), "-o", str(ok), *unreachable]) == 2


def test_the_url_client_imports_no_model_stack() -> None:
    # `pandagpt batch --url` runs in the gateway install: no torch, vLLM or decoders.
    code = (
        "import sys, service.cli, service.batch.command, service.batch.runner, service.batch.make; "
        "heavy = {'torch', 'vllm', 'transformers', 'numpy', 'av', 'PIL'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
