"""Structured-output checks shared by the engine tests: a schema whose every field the
grammar must enforce, and the check that each of `n` choices completed and validates."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jsonschema

from service.contract import OutputConstraint, SamplingSettings


def enum_count_tags_schema(kinds: list[str], max_count: int, max_tags: int) -> dict[str, Any]:
    """An object with an enum, a bounded integer and a bounded array of enums: random
    weights write it only because the grammar masks every step."""
    return {
        "type": "object",
        "properties": {
            "kind": {"enum": kinds},
            "count": {"type": "integer", "minimum": 0, "maximum": max_count},
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": max_tags},
        },
        "required": ["kind", "count", "tags"],
        "additionalProperties": False,
    }


def sampled_json(schema: dict[str, Any], *, n: int, seed: int) -> SamplingSettings:
    constraint = OutputConstraint(kind="json_schema", json_schema=schema)
    return SamplingSettings(
        max_tokens=80, n=n, temperature=1.0, top_p=1.0, seed=seed, constraint=constraint
    )


def assert_choices_validate(deltas: Sequence[Any], n: int, schema: dict[str, Any]) -> None:
    """Each choice ends with "stop" and its text is JSON that `schema` accepts."""
    for index in range(n):
        mine = [delta for delta in deltas if delta.index == index]
        assert mine[-1].finish_reason == "stop", (index, mine[-1])
        jsonschema.validate(json.loads("".join(delta.text for delta in mine)), schema)
