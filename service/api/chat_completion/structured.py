"""`response_format`, the `structured_outputs` extension and `tools` → the job's
output constraint, the tools' prompt text, and the model's text → OpenAI tool calls.

Conventions (Vicuna v0 was never trained for tools, so the grammar does the work):

- a call is written `{"name": <function>, "arguments": {...}}`;
- `tool_choice` a named function: the whole reply is constrained to exactly one
  call of that function (as OpenAI and vLLM answer a named choice, whatever
  `parallel_tool_calls` says);
- "required": the whole reply is one call of any of the tools
  (`parallel_tool_calls` false) or a JSON array of 1 to `MAX_PARALLEL_CALLS` calls;
- "auto": free text, in which a call is marked `<tool_call>{...}</tool_call>`;
  after the opening marker the call's body is constrained (a structural tag);
- "none": no tools: the tools are not shown to the model.

The tools and the convention are appended to the system text. A reply whose
constrained JSON was cut by max_tokens stays text (finish_reason "length").
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema.exceptions import SchemaError
from jsonschema.validators import Draft202012Validator, validator_for

from service.api.chat_completion.protocol import (
    ChatCompletionRequest,
    FunctionCall,
    FunctionDefinition,
    NamedToolChoice,
    ToolCall,
)
from service.contract import OutputConstraint
from service.errors import InvalidRequest

MAX_PARALLEL_CALLS = 8
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_MARKED_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.DOTALL)
# parameters omitted: a function without arguments, as OpenAI reads it
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass(frozen=True)
class ToolPlan:
    mode: Literal["named", "required", "auto"]
    functions: dict[str, FunctionDefinition]
    parallel: bool


@dataclass(frozen=True)
class OutputPlan:
    constraint: OutputConstraint | None = None
    tools: ToolPlan | None = None
    system_text: str | None = None  # appended to the conversation's system text


def check_json_schema(schema: Any, param: str) -> None:
    """A 400 unless `schema` is a JSON Schema (by its `$schema`, else draft 2020-12)."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} must be a JSON Schema object.", param=param)
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InvalidRequest(
            f"{param} is not a valid JSON Schema at {where}: {exc.message[:300]}", param=param
        ) from exc


def _call_schema(name: str, function: FunctionDefinition) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": _parameters(function)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _parameters(function: FunctionDefinition) -> dict[str, Any]:
    return function.parameters if function.parameters is not None else _NO_PARAMETERS


def _tool_plan(request: ChatCompletionRequest) -> ToolPlan | None:
    choice = request.tool_choice
    if not request.tools:
        if choice not in (None, "none"):
            raise InvalidRequest("tool_choice needs tools.", param="tool_choice")
        return None
    functions: dict[str, FunctionDefinition] = {}
    for i, tool in enumerate(request.tools):
        if tool.function.name in functions:
            raise InvalidRequest(
                f"Two tools are named {tool.function.name!r}.", param=f"tools.{i}.function.name"
            )
        functions[tool.function.name] = tool.function
        if tool.function.parameters is not None:
            check_json_schema(tool.function.parameters, f"tools.{i}.function.parameters")
    if choice == "none":
        return None
    parallel = request.parallel_tool_calls is not False
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in functions:
            known = ", ".join(functions)
            raise InvalidRequest(
                f"tool_choice names {choice.function.name[:80]!r}, which is not among the "
                f"tools ({known}).",
                param="tool_choice.function.name",
            )
        named = {choice.function.name: functions[choice.function.name]}
        return ToolPlan("named", named, parallel)
    return ToolPlan("required" if choice == "required" else "auto", functions, parallel)


def _tool_constraint(plan: ToolPlan) -> OutputConstraint:
    if plan.mode == "auto":
        structures = [
            {
                "begin": f'{CALL_OPEN}{{"name":{json.dumps(name)},"arguments":',
                "schema": _parameters(function),
                "end": "}" + CALL_CLOSE,
            }
            for name, function in plan.functions.items()
        ]
        tag = {"structures": structures, "triggers": [CALL_OPEN]}
        spec = json.dumps(tag)
        return OutputConstraint(kind="structural_tag", structural_tag=spec, param="tools")
    calls = [_call_schema(name, function) for name, function in plan.functions.items()]
    one = calls[0] if len(calls) == 1 else {"anyOf": calls}
    if plan.mode == "required" and plan.parallel:  # a named choice is one call, never a list
        one = {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_PARALLEL_CALLS}
    return OutputConstraint(kind="json_schema", json_schema=one, param="tools")


def _tools_text(plan: ToolPlan) -> str:
    listed = "\n".join(
        json.dumps({"name": n, "description": f.description or "", "parameters": _parameters(f)})
        for n, f in plan.functions.items()
    )
    call = '{"name": <function name>, "arguments": <arguments object>}'
    if plan.mode == "auto":
        how = f"To call a function, write {CALL_OPEN}{call}{CALL_CLOSE}."
    elif plan.mode == "required" and plan.parallel:
        how = f"Answer only with a JSON list of function calls, each {call}."
    else:
        how = f"Answer only with one function call: {call}."
    return f"You can call these functions:\n{listed}\n{how}"


def plan_output(request: ChatCompletionRequest) -> OutputPlan:
    """What the request asks of the output; 400s for what cannot be served."""
    tools = _tool_plan(request)
    form = request.response_format
    extension = request.structured_outputs
    asked = [
        name
        for name, on in (
            ("response_format", form is not None and form.type != "text"),
            ("structured_outputs", extension is not None),
            ("tool_choice", tools is not None and tools.mode != "auto"),
        )
        if on
    ]
    if len(asked) > 1:
        raise InvalidRequest(
            f"Only one output constraint per request; got {' and '.join(asked)}.",
            param=asked[1],
        )
    constraint: OutputConstraint | None = None
    if form is not None and form.type == "json_object":
        constraint = OutputConstraint(kind="json_object")
    elif form is not None and form.type == "json_schema":
        if form.json_schema is None or form.json_schema.schema_ is None:
            raise InvalidRequest(
                'response_format {"type": "json_schema"} needs json_schema.schema.',
                param="response_format.json_schema",
            )
        check_json_schema(form.json_schema.schema_, "response_format.json_schema.schema")
        constraint = OutputConstraint(kind="json_schema", json_schema=form.json_schema.schema_)
    elif extension is not None:
        constraint = _extension_constraint(extension.regex, extension.choice)
    if tools is not None and (constraint is None or tools.mode != "auto"):
        # "auto" beside a response_format: the format wins, calls are not parsed.
        return OutputPlan(_tool_constraint(tools), tools, _tools_text(tools))
    return OutputPlan(constraint)


def _extension_constraint(regex: str | None, choice: list[str] | None) -> OutputConstraint:
    if (regex is None) == (choice is None):
        raise InvalidRequest(
            "structured_outputs takes exactly one of regex and choice.", param="structured_outputs"
        )
    if regex is not None:
        return OutputConstraint(kind="regex", regex=regex, param="structured_outputs.regex")
    if not choice:
        raise InvalidRequest(
            "structured_outputs.choice needs at least one entry.",
            param="structured_outputs.choice",
        )
    return OutputConstraint(kind="choice", choice=choice, param="structured_outputs.choice")


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _as_call(value: Any, functions: dict[str, FunctionDefinition]) -> ToolCall | None:
    if not isinstance(value, dict) or value.get("name") not in functions:
        return None
    arguments = value.get("arguments", {})
    text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ToolCall(id=call_id(), function=FunctionCall(name=value["name"], arguments=text))


def tool_calls_of(text: str, plan: ToolPlan) -> tuple[str | None, list[ToolCall]]:
    """A finished reply as (content, calls); no calls if the text is not the convention's."""
    if plan.mode == "auto":
        calls: list[ToolCall] = []
        for match in _MARKED_CALL.finditer(text):
            try:
                call = _as_call(json.loads(match.group(1)), plan.functions)
            except json.JSONDecodeError:
                call = None
            if call is not None:
                calls.append(call)
        if not calls:
            return text, []
        rest = _MARKED_CALL.sub("", text).strip()
        return rest or None, calls[: None if plan.parallel else 1]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text, []
    found = [_as_call(v, plan.functions) for v in (value if isinstance(value, list) else [value])]
    if not found or any(call is None for call in found):
        return text, []
    one = plan.mode == "named" or not plan.parallel
    return None, [call for call in found if call is not None][: 1 if one else None]


def render_call(name: str, arguments: str) -> str:
    """An earlier call as the model would have written it (for follow-up turns)."""
    try:
        value: Any = json.loads(arguments)
    except json.JSONDecodeError:
        value = arguments
    body = json.dumps({"name": name, "arguments": value}, ensure_ascii=False)
    return f"{CALL_OPEN}{body}{CALL_CLOSE}"
