"""The one JSON decoder of submit bodies: what JSON allows but job data cannot keep is a 422 naming its field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobengine_api.jsonbody import _decode_exact, decode, is_json
from jobengine_api.problems import Problem


def refused(body: bytes) -> tuple[str, str]:
    with pytest.raises(Problem) as caught:
        decode(body)
    assert caught.value.status == 422
    (error,) = caught.value.errors or []
    return error["field"], error["message"]


def test_plain_json_decodes_as_json() -> None:
    body = b'{"a": [1, -2, 3.5, "x\\u00e9", true, null, {"b": 18446744073709551615}], "c": -9223372036854775808}'
    assert decode(body) == {"a": [1, -2, 3.5, "x\u00e9", True, None, {"b": 2**64 - 1}], "c": -(2**63)}


@pytest.mark.parametrize(("body", "field", "message"), [
    (b'{"a": 1, "a": 2}', "a", "duplicate key"),
    (b'{"p": {"x": [1, {"k": 1, "k": 1}]}}', "p.x.1.k", "duplicate key"),
    (b'{"a": NaN}', "a", "NaN is not a JSON number"),
    (b'{"a": [Infinity]}', "a.0", "Infinity is not a JSON number"),
    (b'{"a": 18446744073709551616}', "a", "64 bits"),
    (b'{"a": -9223372036854775809}', "a", "64 bits"),
    (b'{"a": 1e309}', "a", "out of range"),
    (b'{"a": "\\udc00"}', "a", "lone surrogate"),
    (b"NaN", "body", "NaN is not a JSON number"),
    # past the fast pass's screens: a repeated key spelled with a space before its colon, beside a string
    # that holds a quote and a colon; integers whose digits say nothing of their sign or size alone
    (b'{"a" :1, "a" :2, "b": "x\\":"}', "a", "duplicate key"),
    (b'{"a": [1, 12345678901234567890123]}', "a.1", "64 bits"),
    (b'{"a":1,"a":2,"s":"\\u0022:"}', "a", "duplicate key"),  # a quote spelled \u0022, then a colon
])
def test_values_job_data_cannot_keep_name_their_field(body: bytes, field: str, message: str) -> None:
    got_field, got_message = refused(body)
    assert got_field == field and message in got_message


def test_the_fast_pass_keeps_what_the_exact_one_keeps() -> None:
    """A key-like token inside a string or many digits send a body to the exact pass, which accepts it."""
    body = b'{"s": "he said \\"x\\": 1", "n": 1.2345678901234567890123, "i": 18446744073709551615, "t" : 1}'
    assert decode(body) == {"s": 'he said "x": 1', "n": 1.2345678901234567890123, "i": 2**64 - 1, "t": 1}


@pytest.mark.parametrize("body", [b"", b"{oops", b"\xff\xfe", b'{"a": 1} x', b"[" * 100_000])
def test_malformed_or_too_deep_bodies_are_422_on_body(body: bytes) -> None:
    assert refused(body)[0] == "body"


@pytest.mark.parametrize(("content_type", "ok"), [
    ("application/json", True), ("application/json; charset=utf-8", True), ("APPLICATION/JSON", True),
    ("application/problem+json", True), (None, False), ("", False), ("text/json", False), ("text/plain", False),
    ("application/jsonp", False), ("application/x-www-form-urlencoded", False),
])
def test_content_types(content_type: str | None, ok: bool) -> None:
    assert is_json(content_type) is ok


# Keys and strings drawn from characters that stress the fast pass's screens: quotes, colons, backslashes
_text = st.text(alphabet=st.sampled_from(['a', 'b', '"', ':', '\\', ' ', 'é', '\n']), max_size=4)
_scalars = st.one_of(st.none(), st.booleans(), _text,
                     st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=False, allow_infinity=False))


def _body(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text with repeated keys, odd spacing and \\u escapes now and then."""
    kind = draw(st.integers(0, 2)) if depth < 3 else 0
    if kind == 0:
        value = draw(_scalars)
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
        return text
    if kind == 1:
        return "[" + ", ".join(_body(draw, depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
    keys = draw(st.lists(_text, max_size=4))
    if keys and draw(st.booleans()):
        keys.append(draw(st.sampled_from(keys)))  # a repeated key
    space = draw(st.sampled_from(["", " ", "\n "]))
    pairs = [json.dumps(k, ensure_ascii=draw(st.booleans())) + space + ":" + _body(draw, depth + 1) for k in keys]
    return "{" + ",".join(pairs) + "}"


@settings(max_examples=600, deadline=None)
@given(st.composite(_body)())
def test_the_fast_pass_decides_as_the_exact_pass(text: str) -> None:
    """Whatever the body, the screens send it to the exact pass or the fast answer is the exact one."""
    body = text.encode()
    try:
        exact: Any = ("ok", _decode_exact(body))
    except Problem as problem:
        exact = ("refused", problem.errors)
    try:
        fast: Any = ("ok", decode(body))
    except Problem as problem:
        fast = ("refused", problem.errors)
    assert fast == exact
