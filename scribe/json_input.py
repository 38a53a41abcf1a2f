"""The one parser for JSON that clients send (request bodies, records files): defensive by default.

Python's `json` accepts what no client should send and scribe must not store: nesting deep enough
to exhaust the interpreter's recursion (a 500 and a dropped connection), `NaN` and `Infinity`
(not JSON at all, and poison in any number they reach), numbers too large for a float (read as
infinity), and, for FHIR input, a key given twice (which value is meant?). Each is refused here
with a message that says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from scribe.errors import BadInputError

MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class _Refused(ValueError):
    """Raised by the decoder hooks; becomes the caller's error type with its message."""


def parse_json(
    raw: bytes | str,
    *,
    what: str = "the body",
    unique_keys: bool = False,
    max_depth: int = MAX_DEPTH,
    error: type[BadInputError] = BadInputError,
) -> Any:
    """`raw` (UTF-8, a BOM allowed) decoded; `error(f"{what}: ...")` for anything refused."""
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if data.count(b"[") + data.count(b"{") > max_depth and (depth := nesting_depth(data)) > max_depth:
        raise error(f"{what}: nested {depth} levels deep; at most {max_depth} are accepted")
    try:
        return json.loads(
            text,
            parse_constant=_constant,
            parse_float=_finite,
            object_pairs_hook=_unique_object if unique_keys else None,
        )
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise error(f"{what}: not usable JSON ({str(exc).splitlines()[0] or type(exc).__name__})") from None


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in `data` (brackets inside strings do not count), counted without
    recursion, so it can be asked before the recursive decoder runs."""
    bare = np.frombuffer(_STRING.sub(b"", data) if b'"' in data else data, np.uint8)
    steps = np.isin(bare, _OPEN).astype(np.int32) - np.isin(bare, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number; send a finite number or null")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def unique_mapping(
    pairs: Iterable[tuple[str, Any]],
    *,
    name: str = "the key",
    where: str = "in one object",
    error: type[Exception] = BadInputError,
) -> dict[str, Any]:
    """`pairs` as a dict, refusing a name given twice (which value was meant?): JSON objects, form fields."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise error(f"{name} {key[:80]!r} appears twice {where}".rstrip())
        out[key] = value
    return out


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return unique_mapping(pairs, error=_Refused)
