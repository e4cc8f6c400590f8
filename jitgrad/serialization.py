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
not list, pickled payloads such as ``torch.save``'s ``data.pkl``) raises
``CheckpointError`` with nothing executed.

``save`` to a path is atomic: it writes a temporary file in the same
folder, fsyncs it and renames it over the target, so a crash mid-save leaves
the previous checkpoint intact.
"""
import collections
import io
import json
import numbers
import os
import re
import tempfile
import zipfile

import numpy as np

from .tensor import Tensor

FORMAT = "jitgrad.checkpoint"
VERSION = 1
_MANIFEST = "manifest.json"
_DTYPES = {"float32": "<f4", "float64": "<f8", "int64": "<i8", "int32": "<i4", "bool": "|b1"}
_FILE = re.compile(r"data/[0-9]{1,9}\.npy")
_MAX_DEPTH = 200
_MAX_MANIFEST = 64 << 20
_MAX_HEADER = 1 << 16


class CheckpointError(RuntimeError, ValueError):
    """A file that is not a valid jitgrad checkpoint (damaged, foreign, or crafted)."""


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
    if isinstance(obj, list):
        return [_encode(v, tensors, index, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, tensors, index, depth + 1) for v in obj]}
    if isinstance(obj, dict):
        items = [[_encode(k, tensors, index, depth + 1), _encode(v, tensors, index, depth + 1)]
                 for k, v in obj.items()]
        return {"odict" if isinstance(obj, collections.OrderedDict) else "dict": items}
    raise TypeError(f"jitgrad.save cannot store an object of type {type(obj).__name__}: "
                    "checkpoints hold tensors, dicts, lists, tuples, numbers, strings and None")


def _write(fh, obj):
    tensors, index = [], {}
    root = _encode(obj, tensors, index)
    entries = []
    for i, t in enumerate(tensors):
        entries.append({"file": f"data/{i}.npy", "dtype": t.dtype.name,
                        "shape": list(t.shape), "requires_grad": bool(t.requires_grad)})
    manifest = {"format": FORMAT, "version": VERSION, "tensors": entries, "root": root}
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(_MANIFEST, json.dumps(manifest))
        for entry, t in zip(entries, tensors):
            arr = t._data if t._data.flags.c_contiguous else t._data.copy(order="C")
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
    """Write ``obj`` (tensors, state dicts, nested dicts/lists/tuples of them and of
    numbers, strings and None) to the path or binary file ``f``.

    Writing to a path replaces the file atomically.
    """
    if hasattr(f, "write"):
        _write(f, obj)
        return
    path = os.path.abspath(os.fspath(f))
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(fh, obj)
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
    name, dtype, shape = entry["file"], np.dtype(_DTYPES[entry["dtype"]]), tuple(entry["shape"])
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
    if not isinstance(entry, dict) or set(entry) != {"file", "dtype", "shape", "requires_grad"}:
        _fail("malformed tensor entry in the manifest")
    if not isinstance(entry["file"], str) or not _FILE.fullmatch(entry["file"]) or \
            entry["file"] not in names:
        _fail(f"tensor file {entry['file']!r} is missing or not a data/<n>.npy name")
    if entry["dtype"] not in _DTYPES:
        _fail(f"unsupported dtype {entry['dtype']!r} (allowed: {', '.join(_DTYPES)})")
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
            if isinstance(key, (Tensor, list, dict)):
                _fail("unhashable dict key in the manifest")
            out[key] = _decode(item[1], tensors, depth + 1)
        return out
    _fail(f"unknown manifest tag {tag!r}")


def load(f, map_location=None, weights_only=True, mmap=None):
    """Read an object written by ``save`` from the path or binary file ``f``.

    Only data is read: nothing in the file is ever executed, and a damaged,
    foreign or crafted file raises ``CheckpointError``. ``map_location`` and
    ``weights_only`` are accepted for PyTorch compatibility (tensors load on
    the CPU; loading is always weights-only).
    """
    try:
        with zipfile.ZipFile(f if hasattr(f, "read") else os.fspath(f)) as zf:
            names = set(zf.namelist())
            if _MANIFEST not in names:
                pickled = any(n.endswith(".pkl") for n in names)
                _fail("not a jitgrad checkpoint: no manifest.json" + (
                    " (this looks like a pickle-based checkpoint, e.g. from torch.save; "
                    "jitgrad never unpickles)" if pickled else ""))
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
            tensors = [Tensor._make(_read_array(zf, e), e["requires_grad"])
                       for e in manifest["tensors"]]
            return _decode(manifest["root"], tensors)
    except (CheckpointError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # whatever a damaged container makes zipfile, json or numpy raise
        name = f if isinstance(f, (str, os.PathLike)) else "the file"
        raise CheckpointError(f"{name} is not a valid jitgrad checkpoint: "
                              f"{type(e).__name__}: {e}") from None
