"""Validation of client-supplied paths: every path is relative to a folder root and stays in it.

Checks are made on the decoded string (aiohttp decodes the query and JSON carries text), so
`%2e%2e` arrives here as `..` and is refused like any other parent reference.
"""

from __future__ import annotations

import re

from storage_proxy.contract import FOLDER_ID_PATTERN
from storage_proxy.errors import BadRequest, InvalidPath

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FOLDER_ID = re.compile(FOLDER_ID_PATTERN)


def clean_relpath(raw: str, *, allow_root: bool = True) -> str:
    """Return `raw` as a normalised '/'-joined relative path ('' is the folder root).

    Refuses absolute paths, `..` components, control characters and over-long names with
    InvalidPath; `.` and empty components are dropped.
    """
    if _CONTROL.search(raw):
        raise InvalidPath("path contains control characters")
    if raw.startswith("/") or raw.startswith("\\"):
        raise InvalidPath("path must be relative to the folder")
    if len(raw.encode()) > MAX_PATH_BYTES:
        raise InvalidPath("path is too long")
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidPath("path must not contain '..'")
        if len(part.encode()) > MAX_NAME_BYTES:
            raise InvalidPath("a path component is too long")
        parts.append(part)
    if not parts and not allow_root:
        raise InvalidPath("path must name an entry inside the folder")
    return "/".join(parts)


def is_within(path: str, prefix: str | None) -> bool:
    """True when clean `path` equals clean `prefix` or lies below it (None/'' = anywhere)."""
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")


def check_folder_id(folder_id: str) -> str:
    if not _FOLDER_ID.match(folder_id):
        raise BadRequest(f"invalid folder id {folder_id!r}")
    return folder_id


def parent_and_name(path: str) -> tuple[str, str]:
    """Split a clean, non-root path into (parent, name)."""
    parent, _, name = path.rpartition("/")
    return parent, name
