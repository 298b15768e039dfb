"""What every API schema shares: a base model that accepts and logs unknown
fields (clients send newer OpenAI parameters than we know), and the OpenAI
error body."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, model_validator

_log = logging.getLogger(__name__)


class OpenAIBaseModel(BaseModel):
    # Unknown fields are kept (not rejected) so new OpenAI parameters don't break
    # old clients of ours; they are logged once per request and then ignored.
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_ignored_fields(self) -> OpenAIBaseModel:
        if self.model_extra:
            _log.info(
                "ignoring unknown fields in %s: %s",
                type(self).__name__,
                ", ".join(sorted(self.model_extra)),
            )
        return self


class ErrorInfo(OpenAIBaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(OpenAIBaseModel):
    error: ErrorInfo
