"""Crash consistency of neuropil.save: SIGKILL at random moments while saving.

Every kill must leave the target either the previous complete file or the new
complete one; the temporary a killed save leaves behind is removed by the next
save of the same file, so killed-and-restarted jobs do not fill the disk; and
a save in progress in another process is never touched by that cleanup.
"""
import os
import random
import signal
import time

import numpy as np
import pytest

import neuropil
from neuropil import io as npio

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

KILLS = 50
VERSIONS = 4  # distinct contents the writers cycle through


def _state(version: int) -> dict:
    # ~3 MB per file: a save takes a few milliseconds, so kills land in every phase
    return {"w": np.full((512, 1024), version, np.float32),
            "b": np.arange(version, version + 300_000, dtype=np.float64)}


def _temporaries(directory, name):
    pat = npio._temp_pattern(name)
    return sorted(n for n in os.listdir(directory) if pat.match(n))


def _writer(path) -> None:
    """Child: save version after version until killed (never returns)."""
    try:
        v = random.randrange(VERSIONS)
        while True:
            v = (v + 1) % VERSIONS
            neuropil.save(_state(v), path, metadata={"version": str(v)})
    finally:
        os._exit(1)


def test_sigkill_while_saving_leaves_old_or_new_file_and_no_temporary_pile(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    neuropil.save(_state(0), path, metadata={"version": "0"})
    rnd = random.Random(1234)
    mid_save_kills = 0
    for i in range(KILLS):
        pid = os.fork()
        if pid == 0:
            _writer(path)
        time.sleep(rnd.uniform(0.0, 0.04))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"kill {i}: the writer ended on its own"
        # the target: always a complete file of one of the versions
        v = int(npio.load_metadata(path)["version"])
        back = neuropil.load(path)
        want = _state(v)
        assert back.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(back[k], want[k], err_msg=f"kill {i}")
        # at most one temporary: the last killed save's (a writer killed before its
        # first save swept nothing, so it may be an earlier writer's); older ones
        # were swept by the saves after them
        temps = _temporaries(tmp_path, path.name)
        assert len(temps) <= 1, f"kill {i}: temporaries pile up: {temps}"
        mid_save_kills += any(t.endswith(f".{pid}.tmp") for t in temps)
    assert mid_save_kills >= KILLS // 10, f"only {mid_save_kills} kills landed mid-save"
    # (os.listdir's order is the directory's, not sorted)
    assert sorted(os.listdir(tmp_path)) == sorted([path.name] + _temporaries(tmp_path, path.name))
    neuropil.save(_state(1), path)  # a clean save sweeps what the last kill left
    assert os.listdir(tmp_path) == [path.name]


def test_a_save_in_progress_elsewhere_is_never_removed(tmp_path):
    path = tmp_path / "model.safetensors"
    neuropil.save({"a": np.zeros(3)}, path)
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a slow save: writes a first chunk, then waits for the parent
        code = 1
        try:
            def chunks():
                yield b"partial"
                os.write(ready_w, b"x")
                os.read(go_r, 1)
            npio._atomic_write(str(path), chunks())
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(ready_r, 1) == b"x"
        (theirs,) = _temporaries(tmp_path, path.name)
        assert theirs.endswith(f".{pid}.tmp")
        # a stale temporary of the same target (no one holds it) and one of another file
        stale = tmp_path / f".{path.name}.abcdefgh.999999999.tmp"
        stale.write_bytes(b"old")
        legacy = tmp_path / f".{path.name}.ijklmnop.tmp"  # as saves wrote them before
        legacy.write_bytes(b"old")
        other = tmp_path / f".{path.name}.x.abcdefgh.1.tmp"
        other.write_bytes(b"not ours")
        neuropil.save({"a": np.ones(3)}, path)
        names = set(os.listdir(tmp_path))
        assert theirs in names, "the cleanup removed a save in progress"
        assert stale.name not in names and legacy.name not in names
        assert other.name in names  # another target's file is left alone
    finally:
        os.write(go_w, b"x")
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == b"partial"  # the slow save completed, atomically
    assert theirs not in os.listdir(tmp_path)
