"""How much structure a JSON body holds, measured on its bytes, before anything parses it.

A body within the byte limit can still hold 85,000 keys; pydantic then walks every one
(`extra="forbid"` makes each an error) and the 422 lists them all: seconds of CPU on the
event loop and a body of tens of megabytes. Here a body with more than `MAX_MEMBERS` keys
and array items in total, or nested deeper than `MAX_DEPTH`, is refused first.

The count is of the bytes outside strings: commas plus opening brackets, which is the
number of keys and items exactly (an empty `[]` or `{}` counts one). It takes a few C-speed
passes over the bytes (`count`, `replace`, `translate`, `split`), no Python loop per
token, and no parse: a megabyte costs milliseconds, less than `json.loads` does. Invalid
JSON is not this module's business; it is measured as it stands and left to the parser.
"""

from __future__ import annotations

MAX_MEMBERS = 10_000
"""Keys and array items in one body: 10x the largest list a route takes (1,000 symbols)."""
MAX_DEPTH = 32
"""Nesting: the deepest body a route takes (a backtest job's `params.config.sizing`) is 4."""

_OPENING = (ord("["), ord("{"))
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'",[]{}')


def json_oversize(
    body: bytes, max_members: int = MAX_MEMBERS, max_depth: int = MAX_DEPTH
) -> str | None:
    """Why `body` holds too much to validate, in one line; None when it is within bounds."""
    opens = body.count(b"[") + body.count(b"{")
    if opens + body.count(b",") <= max_members and opens <= max_depth:
        return None  # small even counting inside strings: every ordinary body, in microseconds
    bare = _outside_strings(body, max_members)
    if bare is None:
        return f"the JSON body holds more than {max_members} keys and items"
    opens = bare.count(b"[") + bare.count(b"{")
    members = bare.count(b",") + opens
    if members > max_members:
        return f"the JSON body holds {members} keys and items; at most {max_members} are accepted"
    if opens > max_depth and _nests_deeper(bare, max_depth):
        return f"the JSON body nests deeper than {max_depth} levels"
    return None


def _outside_strings(body: bytes, max_members: int) -> bytes | None:
    """The commas and brackets of `body` that are not inside a string; None when it holds
    more strings than a body of `max_members` keys and items can (each is a key or a value).

    Escaped backslashes go first, then escaped quotes, so every quote left opens or closes
    a string; removing two adjacent quotes (an empty string, or one's end and the next's
    start) changes no byte's side, and leaves few quotes to split on in ordinary JSON.
    """
    kept = (
        body.replace(b"\\\\", b"")
        .replace(b'\\"', b"")
        .translate(None, _NOT_STRUCTURE)
        .replace(b'""', b"")
    )
    if kept.count(b'"') > 2 * (2 * max_members + 1):
        return None
    return b"".join(kept.split(b'"')[::2])


def _nests_deeper(bare: bytes, limit: int) -> bool:
    """Whether the brackets of `bare` nest deeper than `limit`.

    Called only when `bare` has at most `MAX_MEMBERS` opening brackets; valid JSON closes
    as many, so looking at twice that many brackets keeps the Python loop short.
    """
    brackets = bare.translate(None, b",")
    depth = 0
    for byte in brackets[: 2 * (brackets.count(b"[") + brackets.count(b"{"))]:
        depth += 1 if byte in _OPENING else -1
        if depth > limit:
            return True
    return False
