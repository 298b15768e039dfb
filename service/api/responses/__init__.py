"""`/v1/responses`: api_router (HTTP), protocol (schemas), items (to the chat
request), serving (logic), events (the stream), store, background."""
