"""The packed uint8 cache: atomic builds, a killed build leaves nothing usable, rebuilds work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from disentkit.data import cache as cache_mod


def test_build_once_then_memory_map(tmp_path):
    calls = []

    def build(out):
        calls.append(1)
        out[:] = np.arange(24, dtype=np.uint8).reshape(out.shape)

    a = cache_mod.cached_array("toy", "k1", (2, 3, 4), build, tmp_path)
    b = cache_mod.cached_array("toy", "k1", (2, 3, 4), build, tmp_path)
    assert len(calls) == 1 and isinstance(b, np.memmap) and not b.flags.writeable
    np.testing.assert_array_equal(a, b)
    assert b[1, 2, 3] == 23


def test_exception_midway_leaves_nothing(tmp_path):
    def build(out):
        out[0] = 7
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        cache_mod.cached_array("toy", "k1", (2, 4), build, tmp_path)
    assert list(tmp_path.iterdir()) == []
    arr = cache_mod.cached_array("toy", "k1", (2, 4), lambda out: out.fill(3), tmp_path)
    assert (arr == 3).all()


def test_new_key_replaces_stale_entry_and_wrong_shape_is_rebuilt(tmp_path):
    cache_mod.cached_array("toy", "old", (3,), lambda out: out.fill(1), tmp_path)
    cache_mod.cached_array("other", "old", (3,), lambda out: out.fill(1), tmp_path)
    arr = cache_mod.cached_array("toy", "new", (3,), lambda out: out.fill(2), tmp_path)
    assert (arr == 2).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-old.npy", "toy-new.npy"]
    np.save(tmp_path / "toy-new.npy", np.zeros(5, np.uint8))  # foreign/truncated content
    assert (cache_mod.cached_array("toy", "new", (3,), lambda o: o.fill(4), tmp_path) == 4).all()


def test_killed_build_is_never_used_and_rebuild_cleans_up(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from disentkit.data import cache
        def build(out):
            for i in range(len(out)):
                out[i] = 9
                if i == 1:
                    print("building", flush=True)
                time.sleep(0.05)
        cache.cached_array("slow", "k", (1000, 16), build, {str(tmp_path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert not (tmp_path / "slow-k.npy").exists()
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp.npy")  # hidden, never read
    arr = cache_mod.cached_array("slow", "k", (1000, 16), lambda out: out.fill(5), tmp_path)
    assert (arr == 5).all()  # rebuilt from scratch, not the killed build's 9s
    assert [p.name for p in tmp_path.iterdir()] == ["slow-k.npy"]  # dead temporary removed


def test_fingerprint_changes_with_size_or_mtime(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(b"123")
    k1 = cache_mod.fingerprint_key({"r": 1}, cache_mod.file_fingerprint([f], tmp_path))
    assert k1 == cache_mod.fingerprint_key({"r": 1}, cache_mod.file_fingerprint([f], tmp_path))
    os.utime(f, ns=(1, 1))
    k2 = cache_mod.fingerprint_key({"r": 1}, cache_mod.file_fingerprint([f], tmp_path))
    assert k2 != k1
    assert cache_mod.fingerprint_key({"r": 2}, cache_mod.file_fingerprint([f], tmp_path)) != k2


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache_mod.CACHE_ENV, str(tmp_path / "env"))
    assert cache_mod.default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv(cache_mod.CACHE_ENV)
    assert cache_mod.default_cache_dir().parts[-2:] == ("disentkit", "datasets")
    assert cache_mod.cache_name("x", tmp_path) != cache_mod.cache_name("x", tmp_path / "y")
