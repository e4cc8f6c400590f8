"""Foreign checkpoints: ``torch.save`` zip files and safetensors files read by ``jg.load``.

Files PyTorch writes are made with torch where it is importable; hostile pickles and
safetensors files are made by hand, so those tests run everywhere. Every hostile pickle
here would create a marker file if any of its code ran.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.serialization import (CheckpointError, UnpicklingError, load_safetensors,
                                   save_safetensors)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def torch_zip(pkl, storages=(), byteorder="little", prefix="archive"):
    """A file laid out as ``torch.save`` lays it out, holding the pickle bytes ``pkl``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(f"{prefix}/data.pkl", pkl)
        zf.writestr(f"{prefix}/byteorder", byteorder)
        for key, data in storages:
            zf.writestr(f"{prefix}/data/{key}", data)
        zf.writestr(f"{prefix}/version", "3\n")
    out.seek(0)
    return out


# --- files torch.save wrote ---------------------------------------------------------------

def saved(torch, obj, tmp_path, name="f.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_sequential_state_dict_loads_into_a_jitgrad_model(torch, tmp_path):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                                 torch.nn.Linear(8, 3))
    ours = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    state = jg.load(saved(torch, theirs.state_dict(), tmp_path), map_location="cpu")
    assert isinstance(state, collections.OrderedDict)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    ours.load_state_dict(state)
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(jg.tensor(x)).detach().numpy(), expected, rtol=1e-6,
                               atol=1e-6)


def test_dtypes_views_shared_storages_and_scalars(torch, tmp_path):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    obj = {
        "i64": torch.tensor([[1, -2**40]]), "i32": torch.tensor([7], dtype=torch.int32),
        "bool": torch.tensor([True, False, True]), "0-d": torch.tensor(3.5),
        "f16": torch.tensor([0.5, -65504.0, 1e-3], dtype=torch.float16),
        "bf16": torch.tensor([1.5, -3.0e38, 7.0], dtype=torch.bfloat16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "i16": torch.tensor([-30000], dtype=torch.int16),
        "transposed": base.t(), "offset": base[1:, 2:5], "stepped": base[::2, ::3],
        "base": base, "expanded": torch.tensor([1.0, 2.0]).expand(3, 2),
        "empty": torch.zeros(0, 3), "leaf": torch.ones(2, requires_grad=True),
        "nested": [(1, 2.5, "s", None, True), {"k": [torch.tensor(1)]}],
    }
    back = jg.load(saved(torch, obj, tmp_path))
    widened = {"f16": jg.float32, "bf16": jg.float32, "i8": jg.int64, "u8": jg.int64,
               "i16": jg.int64}
    for key, t in obj.items():
        if key == "nested":
            continue
        got = back[key]
        assert isinstance(got, jg.Tensor) and got.shape == tuple(t.shape), key
        expected = t.detach().float() if key in ("f16", "bf16") else t.detach()
        if key in widened:
            assert got.dtype is widened[key], key
            expected = expected.long() if widened[key] is jg.int64 else expected
        else:
            assert got.dtype.name == str(t.dtype).replace("torch.", ""), key
        assert np.array_equal(got.detach().numpy(), expected.numpy()), key
        assert got.requires_grad == t.requires_grad, key
    assert back["nested"][0] == (1, 2.5, "s", None, True)
    assert back["nested"][1]["k"][0].item() == 1 and back["nested"][1]["k"][0].dtype is jg.int64
    back["transposed"].add_(1)  # each tensor has its own memory
    assert back["base"][0, 1].item() == 1.0


def test_parameters_and_optimizer_state(torch, tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    back = jg.load(saved(torch, {"weight": model.weight, "opt": opt.state_dict()}, tmp_path))
    assert isinstance(back["weight"], nn.Parameter) and back["weight"].requires_grad
    np.testing.assert_array_equal(back["weight"].detach().numpy(), model.weight.detach().numpy())
    state, groups = back["opt"]["state"], back["opt"]["param_groups"]
    assert sorted(state) == [0, 1] and groups[0]["params"] == [0, 1]
    assert groups[0]["betas"] == (0.9, 0.999) and groups[0]["lr"] == 0.01
    for i, p in enumerate(model.parameters()):
        theirs = opt.state_dict()["state"][i]
        assert state[i]["step"].item() == theirs["step"].item()
        np.testing.assert_array_equal(state[i]["exp_avg"].numpy(), theirs["exp_avg"].numpy())


def test_map_location(torch, tmp_path):
    path = saved(torch, {"w": torch.ones(2)}, tmp_path)
    for where in (None, "cpu", torch.device("cpu"), {"cpu": "cpu"}, "cpu:0"):
        assert jg.load(path, map_location=where)["w"].tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="names a device other than the CPU"):
        jg.load(path, map_location="cuda")
    with pytest.raises(RuntimeError, match="names a device other than the CPU"):
        jg.load(path, map_location={"cpu": "cuda:0"})
    with pytest.raises(TypeError, match="not a function"):
        jg.load(path, map_location=lambda storage, location: storage)


def test_big_endian_files(torch, tmp_path):
    path = saved(torch, {"f": torch.tensor([1.5, -2.0]), "i": torch.tensor([3, -4])}, tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    prefix = next(n for n in members if n.endswith("data.pkl"))[:-len("data.pkl")]
    pkl = members[prefix + "data.pkl"]
    keys = [n for n in members if n.startswith(prefix + "data/")]
    dtypes = {}  # each storage's dtype: its bytes as written by torch, little-endian
    for n in keys:
        data = members[n]
        dtypes[n] = "<f4" if np.frombuffer(data, "<f4")[0] == 1.5 else "<i8"
    storages = [(n[len(prefix + "data/"):],
                 np.frombuffer(members[n], dtypes[n]).astype(dtypes[n].replace("<", ">"))
                 .tobytes()) for n in keys]
    back = jg.load(torch_zip(pkl, storages, byteorder="big", prefix=prefix.rstrip("/")))
    assert back["f"].tolist() == [1.5, -2.0] and back["i"].tolist() == [3, -4]


def test_legacy_torch_files_are_refused(torch, tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="raw pickle.*never unpickles"):
        jg.load(path)


def test_damaged_torch_files_raise(torch, tmp_path):
    path = saved(torch, {"w": torch.arange(4.0)}, tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))
    prefix = pkl[:-len("/data.pkl")]
    storage = next(n for n in members if "/data/" in n)
    key = storage.rsplit("/", 1)[1]
    with pytest.raises(CheckpointError, match="storage .* is missing"):
        jg.load(torch_zip(members[pkl], [], prefix=prefix))
    with pytest.raises(CheckpointError, match="holds 8 bytes"):
        jg.load(torch_zip(members[pkl], [(key, members[storage][:8])], prefix=prefix))
    with pytest.raises(CheckpointError):
        jg.load(torch_zip(members[pkl][:-5], [(key, members[storage])], prefix=prefix))


# --- hostile pickles (no torch needed) ---------------------------------------------------

class Payload:
    """Unpickling this runs ``call(*args)``."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def hostile_pickles(marker):
    write = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": pickle.dumps({"w": Payload(os.system, f"touch {marker}")}, protocol=2),
        "exec": pickle.dumps([Payload(exec, write)], protocol=4),
        "eval": pickle.dumps(collections.OrderedDict(a=Payload(eval, write)), protocol=2),
        # an allowed global handed something that is not a storage
        "rebuild on a list": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(]K\x00K\x01\x85K"
                             b"\x01\x85\x89tR.",
        # an OrderedDict asked to run the payload while it is being built
        "OrderedDict with a payload": pickle.dumps(collections.OrderedDict(
            x=Payload(exec, write)), protocol=0),
        "storage class as a function": b"\x80\x02ctorch\nFloatStorage\n(K\x01tR.",
    }


@pytest.mark.parametrize("name", list(hostile_pickles("m")))
def test_hostile_pickles_are_refused_without_running(tmp_path, name):
    marker = tmp_path / "marker"
    payload = hostile_pickles(marker)[name]
    with pytest.raises(UnpicklingError) as info:
        jg.load(torch_zip(payload))
    assert isinstance(info.value, pickle.UnpicklingError)
    assert isinstance(info.value, CheckpointError)
    assert not marker.exists()
    if name in ("os.system", "exec", "eval"):
        assert "Unsupported global" in str(info.value) and "nothing in the file was run" in \
            str(info.value)


def test_refusal_names_the_global(tmp_path):
    with pytest.raises(UnpicklingError, match=r"refused to unpickle posix\.system|"
                                              r"refused to unpickle nt\.system"):
        jg.load(torch_zip(pickle.dumps(Payload(os.system, "true"), protocol=2)))


def test_bad_persistent_ids_are_refused(tmp_path):
    pkl = b"\x80\x02X\x03\x00\x00\x00abcQ."  # persistent id "abc", not a storage tuple
    with pytest.raises(UnpicklingError, match="unsupported persistent id"):
        jg.load(torch_zip(pkl))


# --- safetensors ----------------------------------------------------------------------------

def safetensors_bytes(entries, metadata=None, pad=0):
    """A safetensors file written independently: ``entries`` maps names to (dtype name,
    shape, raw bytes)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in entries.items():
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def test_safetensors_files_load():
    f16 = np.array([0.5, -2.0, 65504.0], "<f2")
    bf16 = (np.array([1.5, -3.0], "<f4").view("<u4") >> 16).astype("<u2")
    entries = {
        "w": ("F32", [2, 2], np.arange(4, dtype="<f4").tobytes()),
        "d": ("F64", [], np.array(2.5, "<f8").tobytes()),
        "i": ("I64", [3], np.array([1, -2, 3], "<i8").tobytes()),
        "h": ("F16", [3], f16.tobytes()), "b": ("BF16", [2], bf16.tobytes()),
        "m": ("BOOL", [2], np.array([True, False]).tobytes()),
        "u": ("U8", [2], np.array([0, 255], "u1").tobytes()),
        "e": ("I32", [0, 4], b""),
    }
    back = jg.load(io.BytesIO(safetensors_bytes(entries, {"format": "pt"}, pad=5)))
    assert list(back) == list(entries)
    assert back["w"].tolist() == [[0.0, 1.0], [2.0, 3.0]] and back["w"].dtype is jg.float32
    assert back["d"].shape == () and back["d"].item() == 2.5 and back["d"].dtype is jg.float64
    assert back["i"].tolist() == [1, -2, 3] and back["i"].dtype is jg.int64
    assert back["h"].tolist() == [0.5, -2.0, 65504.0] and back["h"].dtype is jg.float32
    assert back["b"].tolist() == [1.5, -3.0] and back["m"].tolist() == [True, False]
    assert back["u"].tolist() == [0, 255] and back["u"].dtype is jg.int64
    assert back["e"].shape == (0, 4) and back["e"].dtype is jg.int32


def test_safetensors_roundtrip(tmp_path):
    tensors = {"b.weight": jg.randn(3, 2), "a": jg.arange(6.0, dtype=jg.float64).reshape(2, 3).t(),
               "n": jg.tensor([1, 2]), "k": jg.tensor(True), "j": jg.tensor([5], dtype=jg.int32)}
    path = tmp_path / "m.safetensors"
    save_safetensors(tensors, path, metadata={"note": "x"})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["__metadata__"] == {"note": "x"}
    for back in (load_safetensors(path), jg.load(str(path))):
        assert sorted(back) == sorted(tensors)
        for k, t in tensors.items():
            assert back[k].dtype is t.dtype and np.array_equal(back[k].numpy(), t.numpy())
    with pytest.raises(TypeError, match="dict of names"):
        save_safetensors({"a": np.zeros(2)}, path)


def test_safetensors_files_torch_would_read(torch, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "m.safetensors"
    save_safetensors({"w": jg.tensor([[1.0, 2.0]]), "i": jg.tensor([3])}, path)
    back = safetensors.load_file(str(path))
    assert back["w"].tolist() == [[1.0, 2.0]] and back["i"].tolist() == [3]


BAD_SAFETENSORS = [
    ("offsets past the end", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}},
     "do not hold"),
    ("size mismatch", {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}},
     "do not hold"),
    ("unknown dtype", {"w": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}},
     "unsupported safetensors entry"),
    ("overlap", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, "overlap"),
    ("negative shape", {"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}},
     "malformed"),
    ("extra keys", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "x": 1}},
     "malformed"),
]


@pytest.mark.parametrize("name, header, message", BAD_SAFETENSORS,
                         ids=[b[0] for b in BAD_SAFETENSORS])
def test_bad_safetensors_files_raise(name, header, message):
    text = json.dumps(header).encode()
    raw = struct.pack("<Q", len(text)) + text + bytes(16)
    with pytest.raises(CheckpointError, match=message):
        jg.load(io.BytesIO(raw))


def test_header_length_past_the_end_raises():
    raw = struct.pack("<Q", 1000) + b'{"w": 1}'
    with pytest.raises(CheckpointError, match="does not fit"):
        jg.load(io.BytesIO(raw))
    with pytest.raises(CheckpointError, match="not a jitgrad checkpoint, torch.save"):
        jg.load(io.BytesIO(b"hello world, not a checkpoint"))
