"""Bounds on raw request input, checked in linear time before Python's parsers see it.

Python's parsers have edges that would answer 500 instead of 400: `str.isdigit()` is true
for "²", which `int()` refuses; `int()` refuses more than 4300 digits; `json.loads` recurses
once per nesting level (RecursionError) and takes NaN and Infinity, which are not JSON.
And a string with U+0000 or a lone surrogate parses, but PostgreSQL or UTF-8 refuse it far
downstream (a projector stuck on the event). The checks here are explicit bounds, so every
refusal is a 4xx problem with a reason, given before anything is sent on.
"""

from __future__ import annotations

import re
from itertools import accumulate

from gateway.problems import Problem

MAX_JSON_DEPTH = 32  # arrays and objects inside one another, the outermost included
MAX_NUMBER_DIGITS = 100  # far above any id, count or timestamp; ints stay cheap to convert
# A JSON string, its closing quote optional: every `"` outside strings starts a match that
# runs to the string's end, so one pass over the text finds them all (never backtracking
# from each quote to the end of the text, as a mandatory closing quote would for `"\"\"...`).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_LONG_NUMBER = re.compile(rf"[0-9]{{{MAX_NUMBER_DIGITS + 1}}}")
_CONSTANT = re.compile(r"NaN|Infinity")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)  # left to right: `\\` is one
_MAYBE_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")  # a cheap filter for the above


def ascii_int(raw: str, max_digits: int) -> int | None:
    """`raw` as an int if it is 1 to `max_digits` ASCII digits (no sign, no space), else None."""
    if 0 < len(raw) <= max_digits and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def query_limit(raw: str | None, default: int, maximum: int) -> int:
    """A `?limit=` from 1 to `maximum`, `default` when absent; 400 otherwise."""
    if raw is None:
        return default
    limit = ascii_int(raw, 9)
    if limit is None or not 1 <= limit <= maximum:
        raise Problem(400, "invalid-limit", f"limit must be an integer from 1 to {maximum}")
    return limit


def json_refusal(text: str) -> str | None:
    """Why `text` is refused before `json.loads`, or None if it is within the bounds.

    Outside strings: no nesting deeper than MAX_JSON_DEPTH, no number of more than
    MAX_NUMBER_DIGITS digits, no NaN or Infinity; inside: no character the stores refuse.
    Malformed text may pass; json.loads then refuses it (a parse stops at the first error,
    so it never nests deeper than counted here).
    """
    bare = _outside_strings(text)
    if _CONSTANT.search(bare):
        return "NaN and Infinity are not JSON numbers"
    if _LONG_NUMBER.search(bare):
        return f"a number has more than {MAX_NUMBER_DIGITS} digits"
    brackets = _NOT_BRACKET.sub("", bare)
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH:
        return f"it nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
    if _MAYBE_UNSTORABLE.search(text) and not _storable_escapes(text):
        return "a string holds U+0000 or a lone surrogate, which cannot be stored"
    return None


def _outside_strings(text: str) -> str:
    """`text` with each string's contents taken out, as `_STRING.sub('""', text)` gives it.
    Without a backslash no quote is escaped, so every other piece between quotes is inside a
    string: `str.split` finds them several times faster than the regex, which bodies of
    thousands of events would otherwise spend most of their check on."""
    if "\\" in text:
        return _STRING.sub('""', text)
    pieces = text.split('"')
    outside = pieces[0::2]
    if len(pieces) % 2 == 0:  # an odd number of quotes: the last string is left open
        outside.append("")
    return '""'.join(outside)


def _storable_escapes(text: str) -> bool:
    """No \\u0000 and no unpaired surrogate escape: PostgreSQL text refuses NUL, and UTF-8
    (Avro, PostgreSQL) cannot encode a lone surrogate, so either would fail far downstream."""
    pending_high = -1  # end of a high-surrogate escape still waiting for its low half
    for escape in _ESCAPE.finditer(text):
        code = int(escape.group(1), 16) if escape.group(1) else None
        is_low = code is not None and 0xDC00 <= code <= 0xDFFF
        if pending_high >= 0 and not (is_low and escape.start() == pending_high):
            return False
        if code == 0 or (is_low and pending_high < 0):
            return False
        pending_high = escape.end() if code is not None and 0xD800 <= code <= 0xDBFF else -1
    return pending_high < 0
