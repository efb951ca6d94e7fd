"""Small readers for sysfs-style files; every plugin takes a `root` so tests use fixture trees."""

from __future__ import annotations

from pathlib import Path


def under(root: Path, absolute: str) -> Path:
    """Map an absolute host path into `root` (the real host has root '/')."""
    return root / absolute.lstrip("/")


def host_path(root: Path, path: Path) -> str:
    """Inverse of `under`: the path a container runtime should see."""
    return "/" + str(path.relative_to(root)).lstrip("/")


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_int(path: Path, *, base: int = 10) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def read_numa_node(path: Path) -> int | None:
    node = read_int(path)
    # sysfs reports -1 when the platform has no NUMA information.
    return node if node is not None and node >= 0 else None


def read_properties(path: Path) -> dict[str, str]:
    """Parse 'key value' lines (the kfd topology format)."""
    text = read_text(path)
    if text is None:
        return {}
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            result[key] = value.strip()
    return result
