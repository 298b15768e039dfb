"""HTTP routes of `/v1/responses`: create, retrieve, delete, list input items, cancel."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import JSONResponse, Response

from service.api.deps import AuthDep, RequestIdDep
from service.api.openapi import GET_ERRORS, error_responses, streamed_post_responses
from service.api.responses.background import BackgroundRuns, observed
from service.api.responses.protocol import (
    MAX_OUTPUT_ITEMS_LISTED,
    DeletedResponse,
    InputItemList,
    ResponseObject,
    ResponsesRequest,
)
from service.api.responses.serving import ResponsesServing, owned
from service.errors import InvalidRequest
from service.http.disconnect import cancel_on_disconnect
from service.http.json_body import OffloopJSONRoute

router = APIRouter(prefix="/v1", tags=["responses"], route_class=OffloopJSONRoute)
ResponseId = Annotated[str, Path(max_length=256, description="A response id (`resp_...`).")]
# A stored response's routes can also meet a bad id or query (400) and a missing one (404).
READ_ERRORS = (*GET_ERRORS, 400, 404)
READ = error_responses(*READ_ERRORS)


def _serving(raw: Request) -> ResponsesServing:
    return cast(ResponsesServing, raw.app.state.responses_serving)


def _runs(raw: Request) -> BackgroundRuns:
    return cast(BackgroundRuns, raw.app.state.background_runs)


@router.post(
    "/responses",
    response_model=None,
    responses=streamed_post_responses(
        ResponseObject, "The response (JSON), or server-sent events with `stream: true`"
    ),
)
async def create_response(
    body: ResponsesRequest, raw: Request, request_id: RequestIdDep, _: AuthDep
) -> Response:
    serving = _serving(raw)
    if body.background:
        pending = await serving.accept(body)
        shell = await _runs(raw).start(pending, request_id)
        return JSONResponse(shell.model_dump(mode="json"))
    if body.stream:  # the stream watches for the disconnect itself
        return await serving.create(body, request_id)
    return await cancel_on_disconnect(raw, serving.create(body, request_id))


@router.get("/responses/{response_id}", response_model=ResponseObject, responses=READ)
async def retrieve_response(response_id: ResponseId, raw: Request, _: AuthDep) -> JSONResponse:
    record = await owned(_serving(raw).store, response_id)
    return JSONResponse(observed(record, _runs(raw).heartbeat_s).response)


@router.delete("/responses/{response_id}", response_model=DeletedResponse, responses=READ)
async def delete_response(response_id: ResponseId, raw: Request, _: AuthDep) -> DeletedResponse:
    store, runs = _serving(raw).store, _runs(raw)
    record = await owned(store, response_id)
    if observed(record, runs.heartbeat_s).status in ("queued", "in_progress"):
        await runs.cancel(response_id)  # stopped first: its gateway would write it back
    await store.delete(response_id)
    return DeletedResponse(id=response_id)


@router.get("/responses/{response_id}/input_items", response_model=InputItemList, responses=READ)
async def list_input_items(
    response_id: ResponseId,
    raw: Request,
    _: AuthDep,
    limit: Annotated[int, Query(ge=1, le=MAX_OUTPUT_ITEMS_LISTED)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=256)] = None,
) -> InputItemList:
    record = await owned(_serving(raw).store, response_id)
    items = record.input_items if order == "asc" else record.input_items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after[:80]}'.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return InputItemList(
        data=page,
        first_id=page[0].get("id") if page else None,
        last_id=page[-1].get("id") if page else None,
        has_more=len(items) > limit,
    )


@router.post("/responses/{response_id}/cancel", response_model=ResponseObject, responses=READ)
async def cancel_response(response_id: ResponseId, raw: Request, _: AuthDep) -> JSONResponse:
    store, runs = _serving(raw).store, _runs(raw)
    record = await owned(store, response_id)
    if not record.response.get("background"):
        raise InvalidRequest("Only a background response can be cancelled.", param="response_id")
    if observed(record, runs.heartbeat_s).status in ("queued", "in_progress"):
        await runs.cancel(response_id)
        record = await owned(store, response_id)
    return JSONResponse(observed(record, runs.heartbeat_s).response)
