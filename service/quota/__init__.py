"""Per-key limits and usage at the gateway: the key file, the limiter and its backends.

`keys` reads `PANDAGPT_API_KEY_FILE` (plain lines or YAML with limits);
`limiter` holds the GCRA arithmetic and the per-process backend; `redis`
the shared backend and the fallback to per-process limits when Redis fails;
`quota` is what the API calls: admit a request, settle its usage.
"""

from service.quota.keys import ANONYMOUS, ApiKey, KeyFileError, KeyLimits, parse_key_file
from service.quota.quota import Grant, Quota, create_quota

__all__ = [
    "ANONYMOUS",
    "ApiKey",
    "Grant",
    "KeyFileError",
    "KeyLimits",
    "Quota",
    "create_quota",
    "parse_key_file",
]
