"""Plain ASGI middleware: request id, metrics, body limit, auth."""
