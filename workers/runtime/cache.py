"""A bounded cache for what a worker computes from its inputs: features per input, models per path.

A student moves a slider and sends the same sound again: the expensive part (pitch tracking a
clip, building a model's graph) should not run twice. Keys say *what* was computed from *which
content*, so a changed array or a rewritten checkpoint is never served from the cache:
:func:`content_key` hashes arrays by their bytes, :func:`path_key` names files by path, size and
modification time. The cache holds at most ``max_bytes`` (as reported by the caller) and
``max_items`` entries, dropping the least recently used first.
"""
from __future__ import annotations

import collections
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_MAX_BYTES = int(float(os.environ.get("PDBRIDGE_CACHE_MB", "1024")) * 2**20)
"""Per worker; ``$PDBRIDGE_CACHE_MB`` overrides it (models are counted at their reported size)."""


def content_key(*parts: Any) -> str:
    """A digest of ``parts``: numpy arrays (dtype, shape and bytes), str, bytes, numbers, None,
    and tuples/lists/dicts of these. Equal content gives an equal key, whatever object holds it."""
    h = hashlib.blake2b(digest_size=20)
    _feed(h, parts)
    return h.hexdigest()


def _feed(h: "hashlib._Hash", part: Any) -> None:
    if isinstance(part, np.ndarray):
        data = np.ascontiguousarray(part)
        h.update(f"a{data.dtype.str}{data.shape}".encode())
        h.update(memoryview(data).cast("B"))
    elif isinstance(part, (bytes, bytearray, memoryview)):
        h.update(b"b%d:" % len(part))
        h.update(part)
    elif isinstance(part, str):
        data = part.encode("utf-8")
        h.update(b"s%d:" % len(data))
        h.update(data)
    elif isinstance(part, (bool, int, float)) or part is None:
        h.update(f"n{type(part).__name__}:{part!r};".encode())
    elif isinstance(part, (tuple, list)):
        h.update(b"l%d(" % len(part))
        for item in part:
            _feed(h, item)
        h.update(b")")
    elif isinstance(part, dict):
        h.update(b"d%d(" % len(part))
        for key in sorted(part, key=repr):
            _feed(h, key)
            _feed(h, part[key])
        h.update(b")")
    elif isinstance(part, Path):
        _feed(h, str(part))
    else:
        raise TypeError(f"content_key cannot hash {type(part).__name__}")


def path_key(path: Path | str) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """What a model file or folder *is* right now: its resolved path and, for every file in it,
    name, size and modification time. Retraining into the same folder changes the key."""
    p = Path(path).resolve()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    stats = []
    for f in files:
        st = f.stat()
        stats.append((str(f.relative_to(p)) if p.is_dir() else f.name, st.st_size, st.st_mtime_ns))
    return str(p), tuple(stats)


class Cache:
    """Least-recently-used values under a byte and an entry bound; safe to use from any thread."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_items: int = 64) -> None:
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: "collections.OrderedDict[Hashable, tuple[Any, int]]" = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Optional[Any]:
        """The value stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, nbytes: int = 0) -> None:
        """Store ``value``; one larger than the whole cache is not kept (nothing else is dropped)."""
        if nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._items and (self._bytes > self.max_bytes or len(self._items) > self.max_items):
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def get_or_make(self, key: Hashable, make: Callable[[], T], nbytes: Optional[Callable[[T], int]] = None) -> T:
        """The cached value for ``key``, or ``make()``'s, stored with size ``nbytes(value)``
        (by default the total ``nbytes`` of the numpy arrays it is or holds)."""
        found = self.get(key)
        if found is not None:
            return found
        value = make()
        self.put(key, value, (nbytes or array_bytes)(value))
        return value

    def discard(self, key: Hashable) -> None:
        with self._lock:
            item = self._items.pop(key, None)
            if item is not None:
                self._bytes -= item[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def array_bytes(value: Any) -> int:
    """Bytes of the numpy arrays in ``value`` (an array, or a tuple/list/dict of them)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(array_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(array_bytes(v) for v in value.values())
    return int(getattr(value, "nbytes", 0) or 0)
