"""The documented bound on each list and string of a chat request (README, "Request
limits"). Simple lengths are also in the request schema (so OpenAPI documents them
and the fuzzer probes them); `validation.py` checks the rest before any work."""

MAX_MESSAGES = 256
MAX_CONTENT_PARTS = 64  # per message
MAX_TEXT_CHARS = 262_144  # all message text together (the context holds far less)
MAX_STOP = 4  # as OpenAI
MAX_STOP_CHARS = 256  # per stop sequence
MAX_TOOLS = 64
MAX_TOOL_CALLS = 64  # per assistant message in the history
MAX_NAME_CHARS = 64  # function names, as OpenAI: [A-Za-z0-9_-]{1,64}
MAX_DESCRIPTION_CHARS = 4096  # a function's description
MAX_SCHEMA_BYTES = 32_768  # one schema (response_format, or one tool's parameters), as JSON
MAX_TOOLS_BYTES = 131_072  # all tools together, as JSON
MAX_SCHEMA_DEPTH = 16  # objects and arrays nested in a schema
MAX_ID_CHARS = 256  # user, model, message names, tool call ids
MAX_CHOICES = 64  # structured_outputs.choice entries
MAX_CHOICE_CHARS = 256  # per choice
MAX_REGEX_CHARS = 1024  # structured_outputs.regex
