"""Checkpoints: ``save`` and ``load`` in a data-only format that never unpickles.

A checkpoint is a zip container (as ``numpy.savez`` writes) holding
``manifest.json`` and one ``.npy`` file per tensor. The manifest describes
the saved object as JSON: Python scalars, strings and None as themselves,
lists as arrays, and tagged objects for the rest (``{"tuple": [...]}``,
``{"dict": [[key, value], ...]}``, ``{"odict": ...}`` for OrderedDicts,
``{"tensor": i}``), plus each tensor's file, dtype, shape and
``requires_grad``. Loading checks every one of these before it builds
anything: arrays are read with ``numpy.load(..., allow_pickle=False)`` after
their ``.npy`` header has been checked against the manifest, only the five
jitgrad dtypes are accepted, and any damage (truncation, bad CRC, unknown
tags or dtypes, shapes that do not match the data, entries the manifest does
not list, a pickle beside the manifest) raises ``CheckpointError`` with
nothing executed.

``save`` to a path is atomic: it writes a temporary file in the same
folder, fsyncs it and renames it over the target, so a crash mid-save leaves
the previous checkpoint intact.

numpy arrays are stored like tensors (their entry says ``"ndarray": true``)
and come back as arrays, with more dtypes allowed (float16, the small and
unsigned integers, complex).

``load`` also reads, by the file's content, two foreign formats:

- ``torch.save`` zip files (``<name>/data.pkl`` plus ``<name>/data/<key>``
  storages). Their pickle is read by an unpickler that resolves only the
  globals PyTorch's ``weights_only=True`` loader needs for tensors and plain
  containers (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``,
  the typed storage classes, ``collections.OrderedDict``) and refuses every
  other one with ``UnpicklingError`` before anything is called, so no code
  from the file runs. Each tensor gets its own memory (storages PyTorch
  shared between tensors are copied per tensor).
- safetensors files (a little-endian u64 header length, a JSON header, raw
  little-endian data), read without the safetensors package;
  ``save_safetensors`` writes them.

jitgrad has no float16, bfloat16 or small integer tensors: such foreign
tensors load as float32 and int64 (exactly: both hold every value).
"""
import collections
import io
import json
import numbers
import os
import pickle
import re
import struct
import tempfile
import zipfile

import numpy as np

from .tensor import Tensor

FORMAT = "jitgrad.checkpoint"
VERSION = 1
_MANIFEST = "manifest.json"
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4", "bool": "|b1"}
# what numpy arrays may hold besides: fixed-size numbers (nothing that could carry objects)
_ARRAY_DTYPES = dict(_DTYPES, float16="<f2", int8="|i1", int16="<i2", uint8="|u1",
                     uint16="<u2", uint32="<u4", uint64="<u8", complex64="<c8",
                     complex128="<c16")
_FILE = re.compile(r"data/[0-9]{1,9}\.npy")
_MAX_DEPTH = 200
_MAX_MANIFEST = 64 << 20
_MAX_HEADER = 1 << 16


class CheckpointError(RuntimeError, ValueError):
    """A file that is not a valid jitgrad checkpoint (damaged, foreign, or crafted)."""


class UnpicklingError(CheckpointError, pickle.UnpicklingError):
    """A ``torch.save`` pickle that asks for more than tensors and plain containers."""


# --- saving -----------------------------------------------------------------------------

def _encode(obj, tensors, index, depth=0):
    if depth > _MAX_DEPTH:
        raise ValueError(f"jitgrad.save: object nested deeper than {_MAX_DEPTH} levels")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic) and isinstance(obj.item(), (bool, int, float)):
        obj = obj.item()
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, float):
        return obj
    if isinstance(obj, Tensor):
        key = id(obj)
        if key not in index:
            index[key] = len(tensors)
            tensors.append(obj)
        return {"tensor": index[key]}
    if isinstance(obj, np.ndarray):
        if obj.dtype.name not in _ARRAY_DTYPES:
            raise TypeError(f"jitgrad.save cannot store an object of type ndarray with dtype "
                            f"{obj.dtype}: arrays may hold {', '.join(_ARRAY_DTYPES)}")
        key = id(obj)
        if key not in index:
            index[key] = len(tensors)
            tensors.append(obj)
        return {"tensor": index[key]}
    if isinstance(obj, list):
        return [_encode(v, tensors, index, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, tensors, index, depth + 1) for v in obj]}
    if isinstance(obj, dict):
        items = [[_encode(k, tensors, index, depth + 1), _encode(v, tensors, index, depth + 1)]
                 for k, v in obj.items()]
        return {"odict" if isinstance(obj, collections.OrderedDict) else "dict": items}
    raise TypeError(f"jitgrad.save cannot store an object of type {type(obj).__name__}: "
                    "checkpoints hold tensors, numpy arrays, dicts, lists, tuples, numbers, "
                    "strings and None")


def _c_array(arr):
    # (np.ascontiguousarray would make a 0-d array 1-d)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _write(fh, obj):
    tensors, index = [], {}
    root = _encode(obj, tensors, index)
    entries, arrays = [], []
    for i, t in enumerate(tensors):
        entry = {"file": f"data/{i}.npy", "dtype": t.dtype.name, "shape": list(t.shape),
                 "requires_grad": bool(getattr(t, "requires_grad", False))}
        if isinstance(t, np.ndarray):
            entry["ndarray"] = True  # (in the file's own byte order: little-endian)
            arrays.append(_c_array(t.astype(_ARRAY_DTYPES[t.dtype.name], copy=False)))
        else:
            arrays.append(_c_array(t._data))
        entries.append(entry)
    manifest = {"format": FORMAT, "version": VERSION, "tensors": entries, "root": root}
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(_MANIFEST, json.dumps(manifest))
        for entry, arr in zip(entries, arrays):
            with zf.open(entry["file"], "w", force_zip64=True) as out:
                np.lib.format.write_array(out, arr, allow_pickle=False)


def _file_mode(path):
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save(obj, f):
    """Write ``obj`` (tensors, state dicts, optimizer state dicts, numpy arrays, nested
    dicts/lists/tuples of them and of numbers, strings and None) to the path or binary
    file ``f``.

    Writing to a path replaces the file atomically.
    """
    _save_with(lambda fh: _write(fh, obj), f)


def _save_with(write, f):
    """``write(fh)`` into the binary file ``f``, or atomically into the path ``f``."""
    if hasattr(f, "write"):
        write(f)
        return
    path = os.path.abspath(os.fspath(f))
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# --- loading ----------------------------------------------------------------------------

def _fail(msg):
    raise CheckpointError(msg)


def _read_array(zf, entry):
    """The array ``entry`` describes, after checking its header against the manifest."""
    name, shape = entry["file"], tuple(entry["shape"])
    dtype = np.dtype(_ARRAY_DTYPES[entry["dtype"]])
    info = zf.getinfo(name)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info.file_size > nbytes + _MAX_HEADER:
        _fail(f"{name} is larger than its declared {entry['dtype']} {list(shape)} data")
    raw = zf.read(name)  # checks the CRC
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
              np.lib.format.read_array_header_2_0)(fh, max_header_size=_MAX_HEADER)
    stored_shape, fortran, stored_dtype = header
    if stored_dtype != dtype or tuple(stored_shape) != shape or fortran:
        _fail(f"{name} holds {stored_dtype} {list(stored_shape)} data, but the manifest says "
              f"{entry['dtype']} {list(shape)}")
    if len(raw) - fh.tell() != nbytes:
        _fail(f"{name} has {len(raw) - fh.tell()} bytes of data; {entry['dtype']} "
              f"{list(shape)} needs {nbytes}")
    arr = np.load(io.BytesIO(raw), allow_pickle=False)
    if arr.dtype != dtype or arr.shape != shape:
        _fail(f"{name} does not match its manifest entry")
    return arr if arr.flags.writeable and arr.flags.c_contiguous else np.array(arr)


def _check_entry(entry, names):
    keys = {"file", "dtype", "shape", "requires_grad"}
    if not isinstance(entry, dict) or set(entry) - {"ndarray"} != keys or \
            entry.get("ndarray", True) is not True:
        _fail("malformed tensor entry in the manifest")
    if not isinstance(entry["file"], str) or not _FILE.fullmatch(entry["file"]) or \
            entry["file"] not in names:
        _fail(f"tensor file {entry['file']!r} is missing or not a data/<n>.npy name")
    allowed = _ARRAY_DTYPES if "ndarray" in entry else _DTYPES
    if entry["dtype"] not in allowed:
        _fail(f"unsupported dtype {entry['dtype']!r} (allowed: {', '.join(allowed)})")
    shape = entry["shape"]
    if not isinstance(shape, list) or len(shape) > 32 or not all(
            type(n) is int and 0 <= n < 2 ** 40 for n in shape):
        _fail(f"invalid shape {shape!r}")
    if not isinstance(entry["requires_grad"], bool) or (
            entry["requires_grad"] and entry["dtype"] not in ("float32", "float64")):
        _fail("invalid requires_grad flag")


def _decode(node, tensors, depth=0):
    if depth > _MAX_DEPTH:
        _fail("manifest nested too deeply")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, tensors, depth + 1) for v in node]
    if not isinstance(node, dict) or len(node) != 1:
        _fail("malformed manifest node")
    (tag, value), = node.items()
    if tag == "tensor":
        if type(value) is not int or not 0 <= value < len(tensors):
            _fail(f"manifest refers to tensor {value!r}, which does not exist")
        return tensors[value]
    if tag == "tuple" and isinstance(value, list):
        return tuple(_decode(v, tensors, depth + 1) for v in value)
    if tag in ("dict", "odict") and isinstance(value, list):
        out = collections.OrderedDict() if tag == "odict" else {}
        for item in value:
            if not isinstance(item, list) or len(item) != 2:
                _fail("malformed dict item in the manifest")
            key = _decode(item[0], tensors, depth + 1)
            if isinstance(key, (Tensor, np.ndarray, list, dict)):
                _fail("unhashable dict key in the manifest")
            out[key] = _decode(item[1], tensors, depth + 1)
        return out
    _fail(f"unknown manifest tag {tag!r}")


def _read_checkpoint(zf):
    """The object in the jitgrad checkpoint ``zf`` (which holds ``manifest.json``)."""
    names = set(zf.namelist())
    if zf.getinfo(_MANIFEST).file_size > _MAX_MANIFEST:
        _fail("manifest.json is implausibly large")
    manifest = json.loads(zf.read(_MANIFEST).decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        _fail("not a jitgrad checkpoint: the manifest names no jitgrad format")
    if manifest.get("version") != VERSION:
        _fail(f"unsupported checkpoint version {manifest.get('version')!r}")
    if set(manifest) != {"format", "version", "tensors", "root"} or \
            not isinstance(manifest["tensors"], list):
        _fail("malformed manifest")
    for entry in manifest["tensors"]:
        _check_entry(entry, names)
    extra = names - {_MANIFEST} - {e["file"] for e in manifest["tensors"]}
    if extra:
        _fail(f"unexpected entries {sorted(extra)[:3]} (a checkpoint holds only "
              "manifest.json and the arrays it lists)")
    tensors = [_read_array(zf, e) if "ndarray" in e else
               Tensor._make(_read_array(zf, e), e["requires_grad"])
               for e in manifest["tensors"]]
    return _decode(manifest["root"], tensors)


# --- torch.save files -------------------------------------------------------------------

# jitgrad's dtype for each of PyTorch's storage dtypes (float16 and the small integers
# widened; see the module docstring); bfloat16 is read as its bits
_TORCH_STORAGES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "|i1", "ByteStorage": "|u1", "BoolStorage": "|b1",
}


def _as_jitgrad_dtype(arr, bfloat16=False):
    """``arr`` in the jitgrad dtype that holds its values exactly."""
    if bfloat16:  # the upper half of a float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize < 4:
        return arr.astype(np.float32)
    if kind in "iu" and arr.dtype.itemsize < 4:
        return arr.astype(np.int64)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


class _StorageType:
    """A pickled ``torch.<Name>Storage`` class: only its element type is used."""

    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_TORCH_STORAGES[name])

    def __call__(self, *args):
        raise UnpicklingError(f"torch.{self.name} may only type a storage, not be called")


class _Storage:
    """A storage read from the zip: its elements as a 1-d numpy array."""

    def __init__(self, kind, array):
        self.kind, self.array = kind, array


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """A jitgrad tensor with its own copy of the ``size``/``stride`` view of ``storage``."""
    if not isinstance(storage, _Storage):
        raise UnpicklingError("a tensor in this file is not built from one of its storages")
    ints = (storage_offset,) + tuple(size) + tuple(stride)
    if not all(type(n) is int and n >= 0 for n in ints) or len(size) != len(stride):
        raise UnpicklingError(f"invalid tensor geometry: offset {storage_offset!r}, size "
                              f"{size!r}, stride {stride!r}")
    data = storage.array
    if all(size):
        last = storage_offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= data.size:
            raise UnpicklingError(f"a tensor of size {list(size)} reaches element {last} of "
                                  f"a storage of {data.size}")
        view = np.lib.stride_tricks.as_strided(
            data[storage_offset:], tuple(size), tuple(st * data.itemsize for st in stride))
    else:
        view = np.empty(tuple(size), data.dtype)
    arr = _as_jitgrad_dtype(np.array(view, order="C"), storage.kind.name == "BFloat16Storage")
    return Tensor._make(arr, bool(requires_grad) and arr.dtype.kind == "f")


def _rebuild_parameter(data, requires_grad, backward_hooks):
    from .nn.parameter import Parameter  # (nn builds on tensors; loading only needs it here)
    if not isinstance(data, Tensor):
        raise UnpicklingError("a Parameter in this file holds no tensor")
    return Parameter(data, bool(requires_grad))


_TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _WeightsUnpickler(pickle.Unpickler):
    """Rebuilds tensors and plain containers from a ``torch.save`` pickle; any other global
    is refused before it is looked up, so nothing named in the file can run."""

    def __init__(self, data, read_storage):
        super().__init__(io.BytesIO(data))
        self._read_storage, self._storages = read_storage, {}

    def find_class(self, module, name):
        if (module, name) in _TORCH_GLOBALS:
            return _TORCH_GLOBALS[(module, name)]
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(name)
        raise UnpicklingError(
            f"jitgrad.load refused to unpickle {module}.{name}: a weights-only load rebuilds "
            f"only tensors and plain containers (Unsupported global: GLOBAL {module}.{name}); "
            "nothing in the file was run")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and type(pid[4]) is int and pid[4] >= 0):
            raise UnpicklingError(f"unsupported persistent id {pid!r} (only storages)")
        _, kind, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = _Storage(kind, self._read_storage(key, kind.dtype, numel))
        return self._storages[key]


def _read_torch(zf, pkl):
    """The object in the ``torch.save`` zip ``zf`` whose pickle is the member ``pkl``."""
    prefix = pkl[:-len("data.pkl")]
    names = set(zf.namelist())
    order = zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else \
        "little"
    if order not in ("little", "big"):
        _fail(f"unknown byte order {order!r}")

    def read_storage(key, dtype, numel):
        name = f"{prefix}data/{key}"
        if not re.fullmatch(r"[0-9]{1,12}", key) or name not in names:
            _fail(f"storage {key!r} is missing from the file")
        if zf.getinfo(name).file_size != numel * dtype.itemsize:
            _fail(f"storage {key} holds {zf.getinfo(name).file_size} bytes, not the "
                  f"{numel} elements of {dtype.itemsize} bytes its tensors say")
        return np.frombuffer(zf.read(name), dtype.newbyteorder("<" if order == "little"
                                                               else ">"))

    return _WeightsUnpickler(zf.read(pkl), read_storage).load()


# --- safetensors --------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8",
                       "I32": "<i4", "I16": "<i2", "I8": "|i1", "U8": "|u1", "BOOL": "|b1"}
_SAFETENSORS_NAMES = {"float64": "F64", "float32": "F32", "int64": "I64", "int32": "I32",
                      "bool": "BOOL"}


def _read_safetensors(data):
    """``{name: tensor}`` from the bytes of a safetensors file, in the order of its data."""
    if len(data) < 8:
        _fail("not a safetensors file: shorter than its header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(len(data) - 8, _MAX_MANIFEST):
        _fail(f"safetensors header of {n} bytes does not fit the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        _fail("malformed safetensors header")
    header.pop("__metadata__", None)
    buffer = memoryview(data)[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"} or \
                info["dtype"] not in _SAFETENSORS_DTYPES:
            _fail(f"malformed or unsupported safetensors entry {name!r}: {info!r}")
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(type(k) is int and k >= 0 for k in shape) \
                or not isinstance(offsets, list) or len(offsets) != 2 \
                or not all(type(k) is int for k in offsets):
            _fail(f"malformed safetensors entry {name!r}: {info!r}")
        dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
        begin, end = offsets
        if not 0 <= begin <= end <= len(buffer) or \
                end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            _fail(f"safetensors entry {name!r}: data_offsets {offsets} do not hold "
                  f"{info['dtype']} {shape}")
        spans.append((begin, end, name))
        arr = np.frombuffer(buffer[begin:end], dtype).reshape(shape)
        out[name] = Tensor._make(_as_jitgrad_dtype(arr.copy(), info["dtype"] == "BF16"))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        _fail("safetensors entries overlap")
    return {name: out[name] for _, _, name in spans}


def load_safetensors(f):
    """``{name: tensor}`` from the safetensors file at path ``f`` (or its binary file)."""
    return load(f)


def save_safetensors(tensors, filename, metadata=None):
    """Write the dict ``tensors`` (names to tensors) as a safetensors file, as
    ``safetensors.torch.save_file``; ``metadata`` maps strings to strings."""
    if not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in tensors.items()):
        raise TypeError("save_safetensors expects a dict of names (str) to tensors")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("metadata must be a dict of str to str")
    header = {"__metadata__": metadata} if metadata else {}
    arrays, offset = [], 0
    for name in sorted(tensors):
        arr = _c_array(tensors[name]._data)
        header[name] = {"dtype": _SAFETENSORS_NAMES[arr.dtype.name], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        arrays.append(arr)
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes

    def write(fh):
        fh.write(struct.pack("<Q", len(text)) + text)
        for arr in arrays:
            fh.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    _save_with(write, filename)


# --- loading any of them ------------------------------------------------------------------

def _check_map_location(map_location):
    """Tensors load on the CPU: ``map_location`` may only name it."""
    locations = map_location.values() if isinstance(map_location, dict) else [map_location]
    for where in locations:
        if where is None:
            continue
        if callable(where):
            raise TypeError("jitgrad.load: map_location may be None, a device (name) or a "
                            "dict of them, not a function: tensors always load on the CPU")
        if str(where).split(":")[0] != "cpu":
            raise RuntimeError(f"jitgrad.load: map_location={where!r} names a device other "
                               "than the CPU, where jitgrad tensors live")


def load(f, map_location=None, weights_only=True, mmap=None, **pickle_load_args):
    """Read tensors and containers from the path or binary file ``f``: a checkpoint
    written by ``save``, a ``torch.save`` file, or a safetensors file (``{name: tensor}``),
    told apart by their content.

    Only data is read: nothing in the file is ever executed (a ``torch.save`` pickle may
    name only tensor-building globals), and a damaged, foreign or crafted file raises
    ``CheckpointError`` (``UnpicklingError`` for a refused global). ``map_location`` may
    name only the CPU (``"cpu"``, a ``torch.device("cpu")``, or a dict mapping saved
    locations to it); ``weights_only``, ``mmap`` and ``pickle_load_args`` are accepted for
    PyTorch compatibility (loading is always weights-only).
    """
    _check_map_location(map_location)
    opened = None if hasattr(f, "read") else open(os.fspath(f), "rb")
    try:
        fh = f if opened is None else opened
        start = fh.tell()
        head = fh.read(9)
        fh.seek(start)
        if head[:2] == b"PK":
            with zipfile.ZipFile(fh) as zf:
                names = zf.namelist()
                if _MANIFEST in names:
                    return _read_checkpoint(zf)
                pickles = [n for n in names if re.fullmatch(r"[^/]+/data\.pkl", n)]
                if len(pickles) == 1:
                    return _read_torch(zf, pickles[0])
                _fail("not a jitgrad checkpoint: no manifest.json" + (
                    " (nor a torch.save file: it holds a pickle but not one <name>/data.pkl)"
                    if any(n.endswith(".pkl") for n in names) else ""))
        if head[8:9] == b"{":
            return _read_safetensors(fh.read())
        _fail("not a jitgrad checkpoint, torch.save zip file or safetensors file" + (
            " (this looks like a raw pickle, such as torch.save's legacy format; jitgrad "
            "never unpickles one)" if head[:1] == b"\x80" else ""))
    except (CheckpointError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # whatever a damaged file makes zipfile, json, numpy or pickle raise
        name = f if isinstance(f, (str, os.PathLike)) else "the file"
        raise CheckpointError(f"{name} is not a valid checkpoint: "
                              f"{type(e).__name__}: {e}") from None
    finally:
        if opened is not None:
            opened.close()
