"""Usage by API key on the gateway app: names in metrics, media counted, priority floor,
rate-limit headers on replies (the limits themselves: tests/unit/ratelimit, tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.unit.api.conftest import GatewayFactory
from tests.utils.fake_worker import MODEL
from tests.utils.media import data_url, image_part, user

KEY, BATCH_KEY = "sk-unit-usage-0000000000", "sk-unit-batch-0000000000"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"keys:\n  - name: app\n    key: {KEY}\n    requests_per_minute: 100\n"
        f"    tokens_per_minute: 10000\n  - name: batch\n    key: {BATCH_KEY}\n    priority: 7\n"
    )
    return path


def test_usage_by_key_name_and_headers(gateway_factory: GatewayFactory, key_file: Path) -> None:
    with gateway_factory(api_key_file=key_file) as gw:
        raw = gw.client(KEY).chat.completions.with_raw_response.create(
            model=MODEL,
            max_tokens=8,
            messages=[user("What is it?", image_part(data_url("bird_image.jpg")))],
        )
        usage = raw.parse().usage
        assert raw.headers["x-ratelimit-limit-requests"] == "100"
        assert raw.headers["x-ratelimit-remaining-requests"] == "99"
        assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) <= 10000 - 8
        labels = {"key": "app"}
        assert gw.metric("pandagpt_key_requests_total", {**labels, "endpoint": "chat"}) == 1
        assert gw.metric("pandagpt_key_media_items_total", {**labels, "modality": "image"}) == 1
        assert gw.metric("pandagpt_key_prompt_tokens_total", labels) == usage.prompt_tokens
        assert gw.metric("pandagpt_key_completion_tokens_total", labels) == usage.completion_tokens

        embedded = gw.client(KEY).embeddings.with_raw_response.create(model=MODEL, input="a bird")
        assert embedded.headers["x-ratelimit-remaining-requests"] == "98"
        assert gw.metric("pandagpt_key_requests_total", {**labels, "endpoint": "embeddings"}) == 1


def test_priority_defaults_to_the_key_and_cannot_go_below_it(
    gateway_factory: GatewayFactory, key_file: Path
) -> None:
    with gateway_factory(api_key_file=key_file) as gw:
        batch = gw.client(BATCH_KEY).chat.completions
        for asked in (None, 3, 9):
            extra = {} if asked is None else {"priority": asked}
            batch.create(model=MODEL, max_tokens=4, messages=[user("hi")], extra_body=extra)
        gw.client(KEY).chat.completions.create(
            model=MODEL, max_tokens=4, messages=[user("hi")], extra_body={"priority": -3}
        )
        assert [job.priority for job in gw.worker.jobs] == [7, 7, 9, -3]
        # A key without limits gets no rate-limit headers.
        raw = batch.with_raw_response.create(model=MODEL, max_tokens=4, messages=[user("hi")])
        assert "x-ratelimit-limit-requests" not in raw.headers


def test_anonymous_usage_and_bad_priority(gateway_factory: GatewayFactory) -> None:
    with gateway_factory() as gw:
        gw.client().chat.completions.create(model=MODEL, max_tokens=4, messages=[user("hi")])
        labels = {"key": "anonymous", "endpoint": "chat"}
        assert gw.metric("pandagpt_key_requests_total", labels) == 1
        with pytest.raises(openai.BadRequestError) as info:
            gw.client().chat.completions.create(
                model=MODEL, max_tokens=4, messages=[user("hi")], extra_body={"priority": "high"}
            )
        assert info.value.body["param"] == "priority"
