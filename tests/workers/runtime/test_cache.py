"""The worker cache: content keys follow content, the byte and entry bounds hold, LRU order."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from workers.runtime.cache import Cache, content_key, path_key


def test_content_key_follows_content_not_identity():
    a = np.arange(10, dtype=np.float32)
    assert content_key(a, "crepe", 0.5) == content_key(a.copy(), "crepe", 0.5)
    assert content_key(a, "crepe", 0.5) != content_key(a, "crepe", 0.6)
    b = a.copy()
    b[3] = 99
    assert content_key(a) != content_key(b)
    assert content_key(a) != content_key(a.astype(np.float64))  # same values, other dtype
    assert content_key(a.reshape(2, 5)) != content_key(a)
    assert content_key(("x", 1)) != content_key(("x", 1.0))  # int and float are different settings
    with pytest.raises(TypeError):
        content_key(object())


def test_path_key_changes_when_a_file_is_rewritten(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "ckpt-1").write_bytes(b"one")
    first = path_key(folder)
    assert path_key(folder) == first
    later = time.time() + 5
    (folder / "ckpt-1").write_bytes(b"two")
    os.utime(folder / "ckpt-1", (later, later))
    assert path_key(folder) != first
    (folder / "ckpt-2").write_bytes(b"new")
    assert len(path_key(folder)[1]) == 2


def test_bounds_and_least_recently_used_order():
    cache = Cache(max_bytes=100, max_items=3)
    cache.put("a", 1, 40)
    cache.put("b", 2, 40)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, 40)  # 120 bytes: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.nbytes == 80
    cache.put("d", 4, 0)
    cache.put("e", 5, 0)  # four entries: the oldest (a) goes
    assert len(cache) == 3 and cache.get("a") is None
    cache.put("huge", 6, 1000)  # larger than the cache: not kept, nothing dropped
    assert cache.get("huge") is None and len(cache) == 3


def test_get_or_make_computes_once_and_counts_array_bytes():
    cache = Cache(max_bytes=10_000)
    calls = []

    def make():
        calls.append(1)
        return np.zeros(100, np.float32), {"f0": np.zeros(50, np.float32)}

    key = content_key(np.ones(3), "settings")
    first = cache.get_or_make(key, make)
    second = cache.get_or_make(key, make)
    assert first is second and len(calls) == 1
    assert cache.nbytes == 600
