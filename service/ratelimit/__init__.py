"""Rate limits per API key at the gateway: the key file, the limiter and its backends.

`keys` reads `PANDAGPT_API_KEY_FILE` (plain lines or YAML with limits);
`gcra` holds the GCRA arithmetic and the per-process backend; `redis`
the shared backend and the fallback to per-process limits when Redis fails;
`rate_limiter` is what the API calls: admit a request, settle its usage.
"""

from service.ratelimit.keys import ANONYMOUS, ApiKey, KeyFileError, KeyLimits, parse_key_file
from service.ratelimit.rate_limiter import Grant, RateLimiter, create_rate_limiter

__all__ = [
    "ANONYMOUS",
    "ApiKey",
    "Grant",
    "KeyFileError",
    "KeyLimits",
    "RateLimiter",
    "create_rate_limiter",
    "parse_key_file",
]
