"""`pandagpt batch`: run a JSONL file of requests (OpenAI's Batch API format) against
the service, or in process, resumably; `pandagpt batch make` writes such a file from
a folder of media.

Modules, in the order a run goes through them:

- `format`: the input and output line formats, and the checks that run before
  anything is sent (a bad line is a usage error, exit status 2).
- `output`: the output file: what a previous run finished (resumption), torn
  lines cut away, one whole line written per finished request.
- `media`: local file paths in content parts become `data:` URLs (or base64).
- `client`: one request with bounded, polite retries (429, 503, connection errors).
- `progress`: the progress bar or periodic lines, and the summary.
- `runner`: the loop: a concurrency cap, signals, the exit status.
- `inprocess`: no `--url`: the real app over a model worker, without a network.
- `make`: a folder of media to a batch file.
- `command`: the CLI handlers.

Nothing here imports torch or vLLM at module level: with `--url` the batch client
runs in the light gateway install. Only `inprocess` loads the model side, lazily.
"""
