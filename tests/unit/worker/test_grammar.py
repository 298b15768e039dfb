"""GrammarChecker: the worker's time-bounded pre-compile of output constraints, with
the tiny demo tokenizer; and the real engine enforcing one (in test_engine.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from service.contract import OutputConstraint
from service.errors import InvalidRequest
from service.worker.grammar import GrammarChecker

SCHEMA = {
    "type": "object",
    "properties": {"unit": {"enum": ["c", "f"]}, "days": {"type": "integer", "maximum": 7}},
    "required": ["unit", "days"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tokenizer(demo_model: Path) -> object:
    return AutoTokenizer.from_pretrained(str(demo_model / "llm"))


@pytest.mark.parametrize(
    "constraint",
    [
        OutputConstraint(kind="json_object"),
        OutputConstraint(kind="json_schema", json_schema=SCHEMA),
        OutputConstraint(kind="regex", regex=r"[a-z]{2,5}"),
        OutputConstraint(kind="choice", choice=["yes", "no (maybe)"]),
        OutputConstraint(
            kind="structural_tag",
            structural_tag=json.dumps(
                {
                    "structures": [{"begin": "<call>", "schema": SCHEMA, "end": "</call>"}],
                    "triggers": ["<call>"],
                }
            ),
        ),
    ],
)
async def test_servable_constraints_compile(
    tokenizer: object, constraint: OutputConstraint
) -> None:
    checker = GrammarChecker(tokenizer)
    try:
        await checker.check(constraint)
    finally:
        checker.close()


@pytest.mark.parametrize(
    ("constraint", "words"),
    [
        (OutputConstraint(kind="json_schema", json_schema={"type": "strin"}), "Unsupported type"),
        (
            OutputConstraint(
                kind="json_schema",
                json_schema={"properties": {"a": {"$ref": "#/$defs/gone"}}},
                param="tools",
            ),
            "gone",
        ),
        (
            OutputConstraint(kind="regex", regex="(a", param="structured_outputs.regex"),
            "not closed",
        ),
    ],
)
async def test_what_the_compiler_rejects_is_a_400_naming_the_field(
    tokenizer: object, constraint: OutputConstraint, words: str
) -> None:
    checker = GrammarChecker(tokenizer)
    try:
        with pytest.raises(InvalidRequest) as info:
            await checker.check(constraint)
    finally:
        checker.close()
    assert info.value.param == constraint.param
    assert words in info.value.message and "[" not in info.value.message[:3]


async def test_a_compile_over_the_bound_is_a_400(tokenizer: object) -> None:
    # The first compile also reads the vocabulary: far over a microsecond's bound.
    checker = GrammarChecker(tokenizer, timeout_s=1e-6)
    try:
        with pytest.raises(InvalidRequest) as info:
            await checker.check(OutputConstraint(kind="json_schema", json_schema=SCHEMA))
    finally:
        checker.close()
    assert info.value.param == "response_format" and "longer than" in info.value.message
