"""API keys never leave the child in what it records (chimeraforge_core::redact, in Python).

A server may repeat the ``Authorization: Bearer KEY`` header it received: in a 401 body (the
call's error message), in generated text (the output preview). Before the record is written,
every string in it (object keys included) has each key replaced by ``REDACTED``; a string cut
inside a key (a preview, an error body's first bytes) is caught by redacting a piece of a key,
``MIN_PARTIAL`` characters or longer, at either end of a string. The parent bench redacts
again, and checks that keys are visible ASCII before any request is sent.
"""

from __future__ import annotations

REDACTED = "[redacted api key]"
MIN_PARTIAL = 4


def _keys(keys) -> list:
    """Distinct non-empty keys, longest first (a key containing another is replaced whole)."""
    return sorted({k for k in keys if k}, key=lambda k: (-len(k), k))


def redact_text(text: str, keys) -> str:
    for key in _keys(keys):
        text = text.replace(key, REDACTED)
        for n in range(len(key) - 1, MIN_PARTIAL - 1, -1):
            if text.endswith(key[:n]):
                text = text[: len(text) - n] + REDACTED
                break
        for n in range(len(key) - 1, MIN_PARTIAL - 1, -1):
            if text.startswith(key[len(key) - n:]):
                text = REDACTED + text[n:]
                break
    return text


def redact_json(value, keys):
    """``value`` (a JSON-like tree of dicts, lists, strings, numbers) with every string redacted."""
    keys = _keys(keys)
    if not keys:
        return value

    def walk(v):
        if isinstance(v, str):
            return redact_text(v, keys)
        if isinstance(v, dict):
            return {redact_text(k, keys): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)
