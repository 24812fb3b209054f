"""safetensors save/load: round trips, interop with the safetensors package,
corrupted files, atomic writes, Module.save/load validation."""
import json
import os
import struct

import numpy as np
import pytest

import neuropil
from neuropil import io as npio
from neuropil import nn


class Tiny(nn.Module):
    def __init__(self, dtype=np.float32):
        super().__init__()
        self.weight = nn.Parameter(np.arange(6).reshape(2, 3), dtype=dtype)
        self.bias = nn.Parameter(np.ones(2), dtype=dtype)


def sample_state(rng):
    return {
        "a.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "a.bias": rng.standard_normal(5).astype(np.float64),
        "steps": np.arange(7, dtype=np.int64),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "flags": np.array([True, False]),
        "bytes": np.arange(5, dtype=np.uint8),
    }


def test_round_trip(tmp_path, rng):
    state = sample_state(rng)
    path = tmp_path / "w.safetensors"
    neuropil.save(state, path, metadata={"epoch": "3"})
    back = neuropil.load(path)
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable
    assert npio.load_metadata(path) == {"epoch": "3"}
    # the header length puts the data section on an 8-byte boundary
    raw = path.read_bytes()
    assert (8 + struct.unpack("<Q", raw[:8])[0]) % 8 == 0


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    state = {"t": a.T, "be": a.astype(">f4")}
    neuropil.save(state, tmp_path / "x.safetensors")
    back = neuropil.load(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(back["t"], a.T)
    np.testing.assert_array_equal(back["be"], a.astype(np.float32))
    assert back["be"].dtype == np.float32


def test_interop_with_safetensors_package(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    state = {k: v for k, v in sample_state(rng).items()}
    ours = tmp_path / "ours.safetensors"
    neuropil.save(state, ours, metadata={"format": "np"})
    theirs = st.load_file(str(ours))
    assert set(theirs) == set(state)
    for k in state:
        np.testing.assert_array_equal(theirs[k], state[k])
    path2 = tmp_path / "theirs.safetensors"
    st.save_file(state, str(path2), metadata={"who": "safetensors"})
    back = neuropil.load(path2)
    for k in state:
        np.testing.assert_array_equal(back[k], state[k])
        assert back[k].dtype == state[k].dtype
    assert npio.load_metadata(path2) == {"who": "safetensors"}


def test_module_save_load(tmp_path):
    m = Tiny()
    m.save(tmp_path / "m.safetensors")
    other = Tiny()
    other.weight.data[:] = 0
    other.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(other.weight.data, m.weight.data)


def test_module_load_reports_every_difference(tmp_path):
    path = tmp_path / "bad.safetensors"
    neuropil.save({"weight": np.zeros((3, 3), np.float32), "bias": np.zeros(2, np.float64),
                   "extra": np.zeros(1, np.float32)}, path)
    m = Tiny()
    before = m.weight.data.copy()
    with pytest.raises(ValueError) as err:
        m.load(path)
    msg = str(err.value)
    assert "weight: model has shape (2, 3), file has (3, 3)" in msg
    assert "bias: model has dtype float32, file has float64" in msg
    assert "not in the model: ['extra']" in msg
    np.testing.assert_array_equal(m.weight.data, before)  # nothing changed
    neuropil.save({"weight": np.zeros((2, 3), np.float32)}, path)
    with pytest.raises(ValueError, match=r"missing from the file: \['bias'\]"):
        m.load(path)
    m.load(path, strict=False)
    assert not m.weight.data.any()


def _valid_file(tmp_path):
    path = tmp_path / "ok.safetensors"
    neuropil.save({"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2))}, path)
    return path


def _with_header(tmp_path, header, data=b"\0" * 16, name="h.safetensors"):
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    p = tmp_path / name
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return p


@pytest.mark.parametrize("case, match", [
    ("empty", "fewer than the 8-byte"),
    ("short", "fewer than the 8-byte"),
    ("huge_len", "header length"),
    ("truncated", "header length|outside|covers|cover"),
    ("garbage", "header length|JSON"),
    ("bad_json", "JSON"),
    ("not_object", "not a JSON object"),
    ("bad_dtype", "dtype 'X9'"),
    ("bf16", "dtype 'BF16'"),
    ("bad_shape", "shape"),
    ("neg_shape", "shape"),
    ("offsets_out", "outside"),
    ("count_mismatch", "bytes for shape"),
    ("gap", "contiguous"),
    ("overlap", "contiguous"),
    ("trailing", "cover"),
    ("extra_key", "exactly dtype"),
    ("bad_meta", "__metadata__"),
])
def test_corrupted_files_raise_clear_errors(tmp_path, case, match):
    good = _valid_file(tmp_path).read_bytes()
    e = lambda **k: {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], **k}  # noqa: E731
    p = tmp_path / "bad.safetensors"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "short":
        p.write_bytes(b"\x01\x02\x03")
    elif case == "huge_len":
        p.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    elif case == "truncated":
        p.write_bytes(good[:-5])
    elif case == "garbage":
        p.write_bytes(os.urandom(200))
    elif case == "bad_json":
        p = _with_header(tmp_path, b'{"a": {', data=b"")
    elif case == "not_object":
        p = _with_header(tmp_path, [1, 2], data=b"")
    elif case == "bad_dtype":
        p = _with_header(tmp_path, {"a": e(dtype="X9")})
    elif case == "bf16":
        p = _with_header(tmp_path, {"a": e(dtype="BF16", shape=[8])})
    elif case == "bad_shape":
        p = _with_header(tmp_path, {"a": e(shape="4")})
    elif case == "neg_shape":
        p = _with_header(tmp_path, {"a": e(shape=[-4])})
    elif case == "offsets_out":
        p = _with_header(tmp_path, {"a": e(data_offsets=[0, 32], shape=[8])})
    elif case == "count_mismatch":
        p = _with_header(tmp_path, {"a": e(shape=[3])})
    elif case == "gap":
        p = _with_header(tmp_path, {"a": e(shape=[2], data_offsets=[0, 8]),
                                    "b": e(shape=[1], data_offsets=[12, 16])})
    elif case == "overlap":
        p = _with_header(tmp_path, {"a": e(), "b": e(shape=[2], data_offsets=[8, 16])})
    elif case == "trailing":
        p = _with_header(tmp_path, {"a": e(shape=[2], data_offsets=[0, 8])})
    elif case == "extra_key":
        p = _with_header(tmp_path, {"a": e(code="import os")})
    elif case == "bad_meta":
        p = _with_header(tmp_path, {"__metadata__": {"a": 1}, "a": e()})
    with pytest.raises(ValueError, match=match):
        neuropil.load(p)


def test_every_truncation_is_rejected(tmp_path):
    good = _valid_file(tmp_path).read_bytes()
    p = tmp_path / "t.safetensors"
    for n in range(len(good)):
        p.write_bytes(good[:n])
        with pytest.raises(ValueError):
            neuropil.load(p)


def test_bad_save_arguments(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        neuropil.save([np.ones(2)], tmp_path / "x")
    with pytest.raises(TypeError, match="str"):
        neuropil.save({1: np.ones(2)}, tmp_path / "x")
    with pytest.raises(TypeError, match="complex128"):
        neuropil.save({"c": np.ones(2, complex)}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        neuropil.save({"a": np.ones(2)}, tmp_path / "x", metadata={"a": 1})
    with pytest.raises(ValueError, match="reserved"):
        neuropil.save({"__metadata__": np.ones(2)}, tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        neuropil.save({"a": np.ones(2)}, tmp_path / "nodir" / "x")
    with pytest.raises(FileNotFoundError):
        neuropil.load(tmp_path / "missing.safetensors")
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    neuropil.save({"a": np.arange(3.0)}, path)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    def fail(*args):
        raise Boom("disk full")

    monkeypatch.setattr(os, "fsync", fail)  # fails after part of the data is written
    with pytest.raises(Boom):
        neuropil.save({"a": np.arange(1000.0)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]  # no temporary file left behind
    np.testing.assert_array_equal(neuropil.load(path)["a"], np.arange(3.0))


def test_atomic_write_failure_during_data(tmp_path):
    path = tmp_path / "w.safetensors"
    neuropil.save({"a": np.arange(3.0)}, path)
    before = path.read_bytes()

    class Exploding(dict):
        def items(self):
            yield "a", np.ones(3)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        neuropil.save(Exploding(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]


def test_saved_file_mode_is_not_private(tmp_path):
    path = tmp_path / "w.safetensors"
    neuropil.save({"a": np.ones(1)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
