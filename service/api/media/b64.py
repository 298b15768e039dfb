"""Strict base64 decoding in slices, for inline media of tens of MB.

`base64.b64decode(validate=True)` checks the whole text with a regular
expression and decodes it in one call, holding the GIL throughout (hundreds of
ms for a 40 MB string on a busy core): even in a thread that stalls the event
loop. Decoding slice by slice holds it for about a millisecond at a time, with
the same result: line-wrapped input is accepted (whitespace is dropped, as
before) and anything else outside the alphabet, misplaced padding or a
truncated last group is `binascii.Error`.
"""

from __future__ import annotations

import binascii

SLICE_CHARS = 1 << 20  # a multiple of 4


def decoded_size(text: str, start: int = 0) -> int:
    """An upper bound of the decoded size of `text[start:]`, known before decoding."""
    return (len(text) - start) * 3 // 4


def decode(text: str, start: int = 0) -> bytes:
    """The bytes `text[start:]` encodes (an offset, so that the caller need not copy a
    40 MB tail of a data: URL on the event loop)."""
    parts: list[bytes] = []
    carry = ""
    for begin in range(start, len(text), SLICE_CHARS):
        piece = carry + "".join(text[begin : begin + SLICE_CHARS].split())
        whole = len(piece) - len(piece) % 4
        parts.append(binascii.a2b_base64(piece[:whole], strict_mode=True))
        carry = piece[whole:]
    if carry:
        parts.append(binascii.a2b_base64(carry, strict_mode=True))  # refuses a partial group
    return b"".join(parts)
