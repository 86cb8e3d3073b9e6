"""The one JSON decoder of request bodies (single and batch submit), and its content-type rule.

It refuses what JSON allows but the job data cannot keep: a key given twice in one object (which
value did the client mean?), NaN and Infinity (not JSON; they would come back as null), numbers
outside 64 bits (the job's JSON encoder cannot write them; floats overflowing to infinity alike).
The fast pass is orjson (which refuses NaN, Infinity, overflowing floats and lone surrogates itself),
with screens for what it lets through: a run of 19 digits (an integer near or past 64 bits, which orjson
turns into a float) and a count of key ends against the document written back (duplicates, which orjson
merges). Only a body that fails
them, or orjson, goes through the exact pass: the standard library's C scanner with hooks that raise on
the first such value, and then a second decode that names the field holding it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from .problems import Problem, invalid

INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1  # orjson writes -2**63 .. 2**64-1


class _Refused(Exception):
    """Raised by a hook of the fast pass: the body holds a value we refuse."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Refused
    return obj


def _int(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise _Refused
    return value


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Refused
    return value


def _constant(text: str) -> Any:
    raise _Refused


_fast = json.JSONDecoder(object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant)


# The fast pass's screens, in C (bytes methods: a regex scan cost 7 ns a byte). One translation of the body
# deletes whitespace and turns each digit into "0": a run of 19 zeros then means an integer near or past 64
# bits (shorter ones fit whatever their sign; digits in strings can only make it say so wrongly, never miss).
_SCREEN = bytes(48 if 48 <= b <= 57 else b for b in range(256))
_WHITESPACE = b" \t\n\r"
_LONG_RUN = b"0" * 19
KEY_END = b'":'


def decode(body: bytes) -> Any:
    """The document, or a 422 naming the field of the first refused value ('body' when it is not JSON).

    The fast pass keeps a body only when it surely has no repeated key and no integer near or past 64 bits.
    Keys: every key of the body, whitespace removed, ends in `":` (as may an escaped quote in a string,
    before a colon); orjson writes the document back with no whitespace and with the body's string escapes
    (unless the body spells a character as a \\u escape), so a merged repeated key leaves fewer `":` there.
    (One function, no helpers: it runs on every submit.)"""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _decode_exact(body)
    screened = body.translate(_SCREEN, _WHITESPACE)
    if (b"\\u" in body or _LONG_RUN in screened
            or screened.count(KEY_END) != orjson.dumps(doc).count(KEY_END)):
        return _decode_exact(body)
    return doc


def _decode_exact(body: bytes) -> Any:
    try:
        text = body.decode()
        doc = _fast.decode(text)
        if "\\u" in text:  # an escaped lone surrogate decodes to a str no UTF-8 encoder can write
            _check_surrogates(doc)
        return doc
    except _Refused:
        try:
            field, message = _find_refused(text)
        except RecursionError:
            field, message = "body", "nesting too deep"
        raise invalid([{"field": field, "message": message}], "The body holds a value JSON data cannot keep.") from None
    except RecursionError:  # the C scanner recurses: a body nested deeper than the interpreter's limit
        raise invalid([{"field": "body", "message": "nesting too deep"}], "The body exceeds an input limit.") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise invalid([{"field": "body", "message": f"malformed JSON: {exc}"}], "The body is not valid JSON.") from None


class _Pairs(list):  # type: ignore[type-arg]
    """An object as its list of pairs, duplicates kept (second pass only)."""


class _Bad:
    def __init__(self, message: str) -> None:
        self.message = message


def _slow_int(text: str) -> Any:
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _Bad(f"integers are limited to 64 bits ({INT_MIN} .. {INT_MAX})")


def _slow_float(text: str) -> Any:
    value = float(text)
    return _Bad("number out of range") if math.isinf(value) else value


_slow = json.JSONDecoder(object_pairs_hook=_Pairs, parse_int=_slow_int, parse_float=_slow_float,
                         parse_constant=lambda text: _Bad(f"{text} is not a JSON number"))


def _find_refused(text: str) -> tuple[str, str]:
    """(dotted path, message) of the first refused value, depth first in document order."""
    stack: list[tuple[Any, str]] = [(_slow.decode(text), "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, _Bad):
            return path or "body", value.message
        if isinstance(value, _Pairs):
            seen: set[str] = set()
            for key, _ in value:
                if key in seen:
                    return f"{path}.{key}" if path else key, "duplicate key"
                seen.add(key)
            children = [(f"{path}.{key}" if path else key, child) for key, child in value]
        elif isinstance(value, list):
            children = [(f"{path}.{i}" if path else str(i), child) for i, child in enumerate(value)]
        else:
            continue
        stack.extend((child, child_path) for child_path, child in reversed(children))
    return "body", "invalid JSON value"  # not reached: the fast pass refused something


def _check_surrogates(doc: Any) -> None:
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise invalid([{"field": path or "body", "message": "lone surrogate in a string"}],
                              "The body holds a value JSON data cannot keep.") from None
        elif isinstance(value, dict):
            for key, child in value.items():
                stack.append((key, path))
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((child, f"{path}.{i}" if path else str(i)) for i, child in enumerate(value))


def is_json(content_type: str | None) -> bool:
    """application/json or any application/<x>+json, parameters (charset) allowed."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def unsupported_media_type(content_type: str | None) -> Problem:
    return Problem(415, "unsupported-media-type",
                   f"The body must be JSON (Content-Type: application/json), not {content_type or 'untyped'}.",
                   title="Unsupported Media Type", headers={"Accept-Post": "application/json"})
