"""ETag comparison for conditional reads (`If-None-Match` -> 304)."""

from __future__ import annotations


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """`If-None-Match` lists the current ETag (weak comparison), or is `*`."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in tags or etag in tags or bare in tags or f"W/{bare}" in tags
