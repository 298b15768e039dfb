"""`POST /v1/chat/completions`: api_router (HTTP), protocol (schemas), serving (logic)."""
