"""jitgrad.save / jitgrad.load: round trips, atomic writes, and hostile files.

Every hostile file here carries a pickle whose unpickling would create a
marker file; each test checks both that loading raises ``CheckpointError``
and that the marker was never created.
"""
import collections
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.serialization import CheckpointError


def equal(a, b):
    if isinstance(a, jg.Tensor):
        return (isinstance(b, jg.Tensor) and a.dtype is b.dtype and a.shape == b.shape
                and a.requires_grad == b.requires_grad and np.array_equal(
                    a.detach().numpy(), b.detach().numpy(), equal_nan=True))
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return type(a) is type(b) and a == b


def test_roundtrip_of_nested_data(tmp_path):
    shared = jg.tensor([1.5, 2.5])
    obj = {
        "f32": jg.randn(3, 4), "f64": jg.randn(2, dtype=jg.float64),
        "i64": jg.tensor([[1, -2]]), "i32": jg.tensor([7], dtype=jg.int32),
        "bool": jg.tensor([True, False]), "scalar": jg.tensor(3.0), "empty": jg.zeros(0, 3),
        "strided": jg.arange(12.0).reshape(3, 4).t(), "leaf": jg.ones(2, requires_grad=True),
        "nested": [shared, (shared, None, "text", 1, 2.5, True, float("nan"), float("inf"))],
        3: {"int keys": 1, (1, "t"): "tuple key", None: [], 2.5: {}},
        "ordered": collections.OrderedDict(b=1, a=2),
    }
    path = tmp_path / "ckpt.jg"
    jg.save(obj, path)
    back = jg.load(path)
    assert equal(obj, back)
    assert back["nested"][0] is back["nested"][1][0]  # one tensor saved once, loaded once
    assert back["strided"].is_contiguous() and back["leaf"].is_leaf
    assert jg.load(str(path))["i32"].dtype is jg.int32
    buf = io.BytesIO()
    jg.save(obj, buf)
    buf.seek(0)
    assert equal(obj, jg.load(buf))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.jg"]  # no temporary files left behind


def test_model_and_optimizer_state_dicts_roundtrip(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    opt = jg.optim.AdamW(model.parameters(), lr=0.01)
    model(jg.randn(2, 1, 4, 4)).sum().backward()
    opt.step()
    jg.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "c")
    back = jg.load(tmp_path / "c")
    assert isinstance(back["model"], collections.OrderedDict)
    assert equal(dict(model.state_dict()), dict(back["model"]))
    assert equal(opt.state_dict(), back["opt"])
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_unsupported_objects_are_refused_before_anything_is_written(tmp_path):
    for bad in ({"f": object()}, [np.zeros(2, dtype=object)], {1, 2}, print):
        with pytest.raises(TypeError, match="cannot store an object of type"):
            jg.save(bad, tmp_path / "x")
    assert os.listdir(tmp_path) == []


# --- atomic writes ----------------------------------------------------------------------

def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    jg.save({"w": jg.ones(3)}, path)
    real = np.lib.format.write_array

    def breaks_midway(fh, arr, **kw):
        real(fh, arr[: arr.size // 2] if arr.ndim else arr, **kw)
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", breaks_midway)
    with pytest.raises(OSError, match="disk full"):
        jg.save({"w": jg.zeros(1000)}, path)
    monkeypatch.undo()
    assert jg.load(path)["w"].tolist() == [1.0, 1.0, 1.0]
    assert os.listdir(tmp_path) == ["model.ckpt"]


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "model.ckpt"
    jg.save({"w": jg.ones(3)}, path)
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        import jitgrad as jg
        real = np.lib.format.write_array
        def dies(fh, arr, **kw):
            real(fh, arr[:10], **kw)
            os._exit(7)          # the process dies with the new file half written
        np.lib.format.write_array = dies
        jg.save({{"w": jg.zeros(100000)}}, {str(path)!r})
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 7
    assert jg.load(path)["w"].tolist() == [1.0, 1.0, 1.0]


# --- damaged and hostile files ----------------------------------------------------------------

@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.ckpt"
    jg.save({"w": jg.arange(6.0).reshape(2, 3), "step": 3}, path)
    return path


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_files_raise(good_file, fraction):
    data = good_file.read_bytes()
    cut = good_file.with_name("cut")
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError):
        jg.load(cut)


def test_corrupted_bytes_raise(good_file):
    data = bytearray(good_file.read_bytes())
    at = data.index(np.arange(6.0, dtype=np.float32)[1:].tobytes())  # inside the array data
    data[at] ^= 0xFF
    with pytest.raises(CheckpointError, match="CRC"):
        jg.load(io.BytesIO(bytes(data)))


def rewrite(path, manifest=None, files=None, drop=()):
    """A copy of the checkpoint at ``path`` with its manifest or members changed."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n not in drop}
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest(json.loads(members["manifest.json"])))
    members.update(files or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    out.seek(0)
    return out


def npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def edit(key, value):
    def change(m):
        m["tensors"][0][key] = value
        return m
    return change


MALFORMED = [
    ("unknown dtype", dict(manifest=edit("dtype", "float16")), "unsupported dtype"),
    ("object dtype", dict(manifest=edit("dtype", "object")), "unsupported dtype"),
    ("dtype lies", dict(manifest=edit("dtype", "float64")), "manifest says"),
    ("shape lies", dict(manifest=edit("shape", [3, 3])), "manifest says"),
    ("negative shape", dict(manifest=edit("shape", [-2, 3])), "invalid shape"),
    ("path traversal", dict(manifest=edit("file", "../data/0.npy")), "not a data/<n>.npy"),
    ("missing array", dict(drop=("data/0.npy",)), "missing"),
    ("extra bytes", dict(files={"data/0.npy": npy(np.zeros((2, 3), np.float32)) + b"\0" * 8}),
     "bytes of data"),
    ("short data", dict(files={"data/0.npy": npy(np.zeros((2, 3), np.float32))[:-4]}),
     "bytes of data"),
    ("fortran order", dict(files={"data/0.npy": npy(np.asfortranarray(np.zeros((2, 3),
                                                                         np.float32)))}),
     "manifest says"),
    ("unknown tag", dict(manifest=lambda m: dict(m, root={"__reduce__": ["os.system", "x"]})),
     "unknown manifest tag"),
    ("bad tensor index", dict(manifest=lambda m: dict(m, root={"tensor": 5})), "does not exist"),
    ("unhashable key", dict(manifest=lambda m: dict(m, root={"dict": [[[1], 2]]})),
     "unhashable"),
    ("wrong format", dict(manifest=lambda m: dict(m, format="other")), "names no jitgrad"),
    ("future version", dict(manifest=lambda m: dict(m, version=99)), "unsupported checkpoint"),
    ("extra manifest keys", dict(manifest=lambda m: dict(m, code="print(1)")), "malformed"),
    ("no manifest", dict(drop=("manifest.json",)), "no manifest.json"),
    ("deep nesting", dict(manifest=lambda m: dict(m, root=json.loads("[" * 500 + "]" * 500))),
     "nested too deeply"),
]


@pytest.mark.parametrize("name, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_raise(good_file, name, change, message):
    with pytest.raises(CheckpointError, match=message):
        jg.load(rewrite(good_file, **change))


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_pickled_payloads_are_refused_and_never_executed(tmp_path, good_file):
    marker = tmp_path / "marker"
    payload = pickle.dumps(Payload(marker))
    hostile = {
        "raw pickle": io.BytesIO(payload),
        "torch-style zip": rewrite(good_file, drop=("manifest.json", "data/0.npy"),
                                   files={"archive/data.pkl": payload}),
        "pickle beside a valid manifest": rewrite(good_file, files={"data.pkl": payload}),
        "object array in npy": rewrite(good_file, files={
            "data/0.npy": npy(np.array([Payload(marker)] * 6, dtype=object).reshape(2, 3),
                              allow_pickle=True)}),
        "object array, manifest agrees": rewrite(good_file, manifest=edit("dtype", "object"),
                                                 files={"data/0.npy": npy(
                                                     np.array([Payload(marker)], dtype=object),
                                                     allow_pickle=True)}),
    }
    for name, f in hostile.items():
        with pytest.raises(CheckpointError):
            jg.load(f)
        assert not marker.exists(), name


def test_torch_save_files_load_without_unpickling_code(tmp_path):
    torch = pytest.importorskip("torch")  # (more in test_serialization_torch.py)
    path = tmp_path / "t.pt"
    torch.save({"w": torch.zeros(2)}, path)
    assert equal(jg.load(path), {"w": jg.zeros(2)})


def test_checkpoint_error_is_runtime_and_value_error():
    assert issubclass(CheckpointError, RuntimeError) and issubclass(CheckpointError, ValueError)
    with pytest.raises(FileNotFoundError):
        jg.load("/nonexistent/checkpoint")


# --- numpy arrays -----------------------------------------------------------------------

def test_numpy_arrays_roundtrip_as_arrays(tmp_path):
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {
        "f64": base, "strided": base[:, ::2].T, "0-d": np.array(2.5, np.float32),
        "f16": np.array([1.5, -2.0], np.float16), "u8": np.array([0, 255], np.uint8),
        "i16": np.array([-3], np.int16), "bool": np.array([True, False]),
        "c128": np.array([1 + 2j]), "big-endian": np.array([1.0, 2.0], ">f4"),
        "empty": np.zeros((0, 2), np.int64),
    }
    obj = {"arrays": arrays, "again": arrays["f64"], "tensor": jg.tensor([1.0])}
    jg.save(obj, tmp_path / "a")
    back = jg.load(tmp_path / "a")
    for name, arr in arrays.items():
        got = back["arrays"][name]
        assert type(got) is np.ndarray and got.shape == arr.shape, name
        assert got.dtype == arr.dtype.newbyteorder("="), name
        assert np.array_equal(got, arr), name
    assert back["again"] is back["arrays"]["f64"]
    assert isinstance(back["tensor"], jg.Tensor)


def test_array_entries_are_checked(tmp_path):
    path = tmp_path / "a"
    jg.save({"a": np.zeros(2, np.float16), "t": jg.zeros(2)}, path)

    def entry(i, **change):
        def edit_manifest(m):
            m["tensors"][i].update(change)
            return m
        return edit_manifest
    with pytest.raises(CheckpointError, match="malformed tensor entry"):
        jg.load(rewrite(path, manifest=entry(0, ndarray=False)))
    with pytest.raises(CheckpointError, match="unsupported dtype 'float16'"):
        jg.load(rewrite(path, manifest=lambda m: (m["tensors"][0].pop("ndarray"), m)[1]))
    with pytest.raises(CheckpointError, match="unsupported dtype 'object'"):
        jg.load(rewrite(path, manifest=entry(0, dtype="object")))
    assert jg.load(rewrite(path, manifest=entry(1, ndarray=True)))["t"].dtype == np.float32
