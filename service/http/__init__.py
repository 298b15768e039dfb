"""The HTTP pieces both servers share (the public API in `service.api` and the
worker's internal API in `service.worker.http_app`): request ids, the access
log and request metrics, streamed responses, disconnect handling, JSON log
lines, and errors as responses. Nothing here knows about either API."""
