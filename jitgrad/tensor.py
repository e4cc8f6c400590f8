"""The ``Tensor``: a numpy array plus PyTorch's autograd state.

Ops live in ``ops/``; this module holds the state every tensor carries
(data, version counter, ``requires_grad``, ``grad``, ``grad_fn``), the
methods that read or change that state, and creation functions.
"""
import math
import numbers
import warnings
import weakref
from builtins import any as builtins_any

import numpy as np

from . import dtypes as dt
from ._tensor_str import tensor_repr
from .autograd.graph import AccumulateGrad, _Handle
from .core.state import _leaf_epoch as _lazy_leaf_epoch


class Size(tuple):
    """A tensor's shape: a tuple that prints as ``jitgrad.Size([2, 3])``."""

    def __repr__(self):
        return f"jitgrad.Size([{', '.join(map(str, self))}])"

    def numel(self):
        return int(np.prod(self, dtype=np.int64))


class device:
    """Where a tensor lives. jitgrad's tensors are on the CPU."""

    def __init__(self, type="cpu", index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        type, _, idx = str(type).partition(":")
        if type not in ("cpu", "cuda"):
            raise RuntimeError(
                f"Expected one of cpu, cuda device type at start of device string: {type}")
        self.type, self.index = type, int(idx) if idx else index

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        try:
            other = device(other)
        except (RuntimeError, ValueError, TypeError):
            return NotImplemented
        return (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))


_CPU = device("cpu")


def _check_device(dev):
    if dev is not None and device(dev).type != "cpu":
        raise RuntimeError(
            "jitgrad was not built with CUDA tensors enabled: tensors live on the CPU "
            "(device='cpu'); the numba.cuda backend is a separate, optional component.")


# The lazy runtime sits above this module and installs these when it is imported
# (``install_runtime``); a tensor reaches them as module globals, with no import per access.
_realize = None      # computes a pending tensor
_Pending = None      # the class of a recorded output (also a not-yet-made grad_fn)
_materialize = None  # makes a deferred grad_fn (and its inputs')
_changing = None     # called before a tensor's autograd state changes
_tls = None          # per thread: the recorder, and the jitgrad.jit capture watching, if any
_pending_alias = None  # a pending tensor that takes another's value


def install_runtime(realize, pending_class, materialize, changing, per_thread, alias):
    """Install the lazy runtime's entry points (jitgrad.lazy calls this once, when imported)."""
    global _realize, _Pending, _materialize, _changing, _tls, _pending_alias
    _realize, _Pending, _materialize = realize, pending_class, materialize
    _changing, _tls, _pending_alias = changing, per_thread, alias


def _user_read():
    """A value leaves for Python: a jitgrad.jit capture cannot replay what Python does
    with it (only returned ``.item()`` values replay)."""
    capture = _tls.capture
    if capture is not None and not _tls.quiet:
        capture.fail("a tensor's value was read (only returned .item() values replay)")

_NON_LEAF_GRAD = (
    "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
    "attribute won't be populated during autograd.backward(). If you indeed want the .grad field "
    "to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. If you "
    "access the non-leaf Tensor by mistake, make sure you access the leaf Tensor instead. See "
    "github.com/pytorch/pytorch/pull/30531 for more information.")


_NOT_COPIED = frozenset(("_grad_home", "_views", "_output_nr", "_grad", "_base", "_view_fn",
                         "_retains_grad", "_hooks", "_accumulator"))


class Tensor:
    """A multi-dimensional array that records the ops applied to it for autograd.

    ``Tensor(data)`` builds a float32 tensor from a list (like ``FloatTensor``);
    ``Tensor(2, 3)`` an uninitialised one of that size.
    """

    __slots__ = ("_value", "_lazy", "_vc", "_requires_grad", "_grad_fn", "__weakref__", "__dict__")

    # set on few tensors (leaves, views, hooked or retaining ones): kept in the instance
    # dict when set, so making the many other tensors costs less
    _output_nr = 0
    _grad = None
    _base = None
    _view_fn = None
    _retains_grad = False
    _hooks = None
    _accumulator = None
    _bk = None  # lazy mode's key for this tensor as a Program input (see lazy._bind)

    def __init__(self, *args):
        if len(args) == 1 and not isinstance(args[0], numbers.Integral):
            data = np.array(_unwrap(args[0]), dtype=np.float32)
        else:
            data = np.empty(_shape_arg(args), np.float32)
        self._init(data)

    def _init(self, data, requires_grad=False, version=None):
        self._value = data
        self._lazy = None
        self._vc = [0] if version is None else version
        self._requires_grad = requires_grad
        self._grad_fn = None

    @classmethod
    def _make(cls, data, requires_grad=False, version=None):
        t = object.__new__(cls)
        t._init(data, requires_grad, version)
        return t

    def _alias(self, grad_fn=None, output_nr=0, version=True):
        """A new tensor object over the same storage (and version counter, unless
        ``version=False``); a tensor whose segment has not run yet (or any pending one,
        under a jitgrad.jit capture) has a pending alias."""
        if self._value is None and (self._lazy.seg.program is None or _tls.capture is not None):
            t = _pending_alias(self)  # (an op of the segment being recorded)
            # it shares storage, but is no view for autograd (PyTorch's detach() and .data
            # have no _base): an in-place write through it must not rebase our history
            t.__dict__.pop("_base", None)
            t.__dict__.pop("_view_fn", None)
        else:  # (computed already, a loss after its step: taken now, not recorded into
            t = Tensor._make(self._data)  # the next step's segment, tying it to this one)
        if version:
            t._vc = self._vc
        t._requires_grad = grad_fn is not None
        t.grad_fn, t._output_nr = grad_fn, output_nr
        return t

    @property
    def _version(self):
        """How many in-place writes this tensor's storage has seen (shared with its views)."""
        return self._vc[0]

    @property
    def _data(self):
        """The values as a numpy array; a pending (lazy) tensor is realized first."""
        value = self._value
        if value is None:
            _realize(self)
            value = self._value
        return value

    @_data.setter
    def _data(self, value):
        self._value = value
        self._lazy = None
        self.__dict__.pop("_bk", None)

    @property
    def _shape(self):
        v = self._value
        return v.shape if v is not None else self._lazy.shape

    @property
    def _npdtype(self):
        v = self._value
        return v.dtype if v is not None else self._lazy.dtype

    # --- autograd state ---------------------------------------------------

    @property
    def grad_fn(self):
        """The node that made this tensor (``None`` for leaves).

        Lazy mode records an op's node only when something asks for it (this
        property, a backward pass that cannot be replayed): until then the
        pending computation stands in for it, with the versions its saved
        tensors had when the op ran.
        """
        fn = self._grad_fn
        if fn is not None and fn.__class__ is _Pending:
            fn = _materialize(self)
        return fn

    @grad_fn.setter
    def grad_fn(self, fn):
        self._grad_fn = fn
        self.__dict__.pop("_bk", None)

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if self._grad_fn is not None:
            if flag:
                return
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach().")
        if flag and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if bool(flag) != self._requires_grad:
            _changing(self)
            self.__dict__.pop("_bk", None)
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return ``self``."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        """True for tensors not made by a recorded op (``grad_fn is None``)."""
        return self._grad_fn is None

    @property
    def grad(self):
        if self.grad_fn is not None and not self._retains_grad:
            warnings.warn(_NON_LEAF_GRAD, UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of "
                                f"type {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(
                    f"attempting to assign a gradient of size '{list(value.shape)}' to a tensor "
                    f"of size '{list(self.shape)}'. Please ensure that the gradient and the "
                    "tensor are the same size")
            if value.dtype is not self.dtype:
                raise RuntimeError("attempting to assign a gradient with dtype "
                                   f"'{value.dtype}' to a tensor with dtype '{self.dtype}'. "
                                   "Please ensure that the gradient and the tensor have the "
                                   "same dtype")
        capture = _tls.capture
        if capture is not None:  # a jitgrad.jit replay clears it too; it cannot assign one
            if value is None:
                capture.call("set_grad", self)
            else:
                capture.fail("a gradient was assigned")
        self._grad = value

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after ``backward()``."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self._retains_grad = True
            self.grad_fn.watch(self._output_nr, self)

    @property
    def retains_grad(self):
        return self._retains_grad

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        self._hooks = (self._hooks or []) + [hook]
        _lazy_leaf_epoch[0] += 1  # lazy mode's cached steps check hooks again
        if self.grad_fn is not None:
            self.grad_fn.watch(self._output_nr, self)
        return _Handle(self, "_hooks", hook)

    def _grad_accumulator(self):
        acc = self._accumulator and self._accumulator()
        if acc is None:
            acc = AccumulateGrad(self)
            self._accumulator = weakref.ref(acc)
        return acc

    @property
    def data(self):
        """This tensor's values as a tensor that shares storage but not history or version."""
        return self._alias(version=False)

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data = value._data

    def detach(self):
        """A tensor sharing storage and version counter, cut from the graph."""
        return self._alias()

    def detach_(self):
        """Cut this tensor from the graph in place, making it a leaf."""
        if self._base is not None and self._base.requires_grad and self.grad_fn is not None:
            raise RuntimeError("Can't detach views in-place. Use detach() instead.")
        _changing(self)
        self.grad_fn = None
        self._requires_grad = False
        return self

    # --- metadata ---------------------------------------------------------

    @property
    def shape(self):
        return Size(self._shape)

    def size(self, dim=None):
        """The shape, or the size of one dimension."""
        if dim is None:
            return self.shape
        return self._shape[_dim(dim, self.ndim)]

    @property
    def dtype(self):
        return dt._FROM_NP[self._npdtype]

    @property
    def device(self):
        return _CPU

    @property
    def is_cuda(self):
        return False

    @property
    def ndim(self):
        return len(self._shape)

    def dim(self):
        return len(self._shape)

    def numel(self):
        return math.prod(self._shape)

    nelement = numel

    def element_size(self):
        return self._npdtype.itemsize

    def is_floating_point(self):
        return self.dtype.is_floating_point

    def is_contiguous(self):
        return self._data.flags.c_contiguous

    def stride(self, dim=None):
        strides = tuple(s // self._data.itemsize for s in self._data.strides)
        return strides if dim is None else strides[_dim(dim, self.ndim)]

    def data_ptr(self):
        return self._data.ctypes.data

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __hash__(self):
        return id(self)

    # --- conversion -------------------------------------------------------

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        capture = _tls.capture
        if self._value is None and capture is None:  # a loss its step's Program computed:
            p = self._lazy  # read from the arena (the common case of a training loop)
            program = p.seg.program
            if program is not None and p._v is None and p.dtype is program.fdtype:
                off, n = program.node_slots[p.pos]
                if n == 1 and not p.op.view:
                    return p.seg.arena[off].item()
        if capture is not None:
            pending = self._lazy if self._value is None else None
            _tls.quiet += 1
            try:
                value = self._data.reshape(-1)[0].item() if self.numel() == 1 else None
            finally:
                _tls.quiet -= 1
            if value is not None:
                capture.item(pending, value)
                return value
        value = self._data
        if value.size != 1:
            raise RuntimeError(
                f"a Tensor with {value.size} elements cannot be converted to Scalar")
        return value.item()

    def tolist(self):
        _user_read()
        return self._data.tolist()

    def numpy(self, force=False):
        """The values as a numpy array sharing this tensor's memory."""
        _user_read()
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def __bool__(self):
        _user_read()
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(-1)[0])

    def __float__(self):
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(self.item())

    def __int__(self):
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return int(self.item())

    def __index__(self):
        if self.dtype.kind != 1 or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self):
        _user_read()
        suffixes = []
        if self.grad_fn is not None:
            suffixes.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self._requires_grad:
            suffixes.append("requires_grad=True")
        return tensor_repr(self._data, self.dtype.name, suffixes)

    __str__ = __repr__

    def __format__(self, spec):
        # as PyTorch: a 0-d tensor formats as its Python number (f"{t}" gives "1.0")
        if self.ndim == 0:
            return format(self.item(), spec)
        return format(repr(self), spec)

    def __reduce_ex__(self, protocol):
        raise TypeError("jitgrad tensors are not pickled; use jitgrad.save() for checkpoints")

    def __deepcopy__(self, memo):
        """A leaf copy with its own storage (``copy.deepcopy`` of tensors and modules)."""
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.  If you were "
                               "attempting to deepcopy a module, this may be because of a "
                               "torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        import copy
        new = type(self)._make(self._data.copy(), self._requires_grad)
        memo[id(self)] = new
        if self._grad is not None:
            new._grad = copy.deepcopy(self._grad, memo)
        for k, v in self.__dict__.items():
            if k not in _NOT_COPIED:  # autograd, arena and view bookkeeping stay behind
                new.__dict__[k] = copy.deepcopy(v, memo)
        return new


def result_type(*operands):
    """PyTorch's ``result_type`` over tensors and Python scalars.

    Operands fall into three tiers: tensors with dimensions, zero-dimensional
    tensors, and Python numbers. A lower tier only matters when its category
    (bool < integer < floating) is higher than every tier above it, and a
    Python number then contributes its category's default dtype.
    """
    tiers = [None, None, None]
    for x in operands:
        if isinstance(x, Tensor):
            tier, d = (0 if x.ndim else 1), x.dtype
        else:
            tier, d = 2, dt.scalar_dtype(x)
        tiers[tier] = d if tiers[tier] is None else dt.promote_types(tiers[tier], d)
    result = None
    for d in tiers:
        if d is None:
            continue
        if result is None:
            result = d
        elif d.kind > result.kind:
            result = dt.promote_types(result, d)
    return result


# --- helpers shared with ops/ ---------------------------------------------------

def _dim(d, ndim):
    """Normalise a possibly negative dim, with PyTorch's IndexError."""
    n = max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {d})")
    return d % n


def _shape_arg(args):
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list, Size)):
        args = tuple(args[0])
    for s in args:
        if not isinstance(s, numbers.Integral) or isinstance(s, bool):
            raise TypeError(f"size must be a tuple of ints, but got {type(s).__name__}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: "
                               f"{list(args)}")
    return tuple(int(s) for s in args)


def _unwrap(data):
    """Nested Python data with any tensors inside replaced by their values."""
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_unwrap(x) for x in data]
    return data


def _infer_dtype(data):
    """The dtype ``tensor(data)`` picks: numpy's dtype, else bool < int < default float."""
    if isinstance(data, np.ndarray):
        return dt.from_numpy_dtype(data.dtype)
    if isinstance(data, np.generic):
        return dt.from_numpy_dtype(data.dtype)
    kind = 0
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, Tensor):
            kind = max(kind, x.dtype.kind)
        elif isinstance(x, np.ndarray):
            kind = max(kind, dt.from_numpy_dtype(x.dtype).kind)
        elif isinstance(x, (bool, np.bool_)):
            pass
        elif isinstance(x, numbers.Integral):
            kind = max(kind, 1)
        elif isinstance(x, numbers.Real):
            kind = 2
        else:
            raise TypeError(f"Could not infer dtype of {type(x).__name__}")
    if kind == 0 and not _has_bool(data):
        return dt.get_default_dtype()  # an empty list
    return (dt.bool_, dt.int64, dt.get_default_dtype())[kind]


def _has_bool(data):
    if isinstance(data, (list, tuple)):
        return any(_has_bool(x) for x in data)
    return isinstance(data, (bool, np.bool_)) or (
        isinstance(data, Tensor) and data.dtype is dt.bool_)


def _check_rectangular(data, dim):
    """Nested lists of equal lengths per level, with PyTorch's error when not."""
    items = [x for x in data]
    nested = [isinstance(x, (list, tuple)) for x in items]
    if not builtins_any(nested):
        return
    n = len(items[0]) if nested[0] else None
    for x, is_seq in zip(items, nested):
        length = len(x) if is_seq else None
        if length != n or not is_seq:
            raise ValueError(f"expected sequence of length {n} at dim {dim + 1} "
                             f"(got {length if length is not None else 0})")
    for x in items:
        _check_rectangular(x, dim + 1)


def _require_grad_ok(d, requires_grad):
    if requires_grad and not d.is_floating_point:
        raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")


# --- creation ---------------------------------------------------------------------

def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (nested lists, numbers, arrays, tensors)."""
    _check_device(device)
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use "
                      "sourceTensor.detach().clone() or sourceTensor.detach().clone()"
                      ".requires_grad_(True), rather than jitgrad.tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
    d = dt.to_dtype(dtype) if dtype is not None else (
        data.dtype if isinstance(data, Tensor) else _infer_dtype(data))
    _require_grad_ok(d, requires_grad)
    if isinstance(data, (list, tuple)):
        _check_rectangular(data, 0)
    arr = np.array(_unwrap(data), dtype=d.np)
    return Tensor._make(arr, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Like ``tensor`` but shares memory with a numpy array or tensor when it can."""
    if isinstance(data, Tensor) and (dtype is None or dt.to_dtype(dtype) is data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or dt.to_dtype(dtype).np == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array):
    """A tensor that shares memory with the numpy ``array``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    dt.from_numpy_dtype(array.dtype)
    return Tensor._make(array)


def _filled(shape, fill, dtype, requires_grad, device):
    _check_device(device)
    d = dt.to_dtype(dtype) if dtype is not None else (
        dt.get_default_dtype() if fill is None or isinstance(fill, float) else dt.scalar_dtype(fill))
    _require_grad_ok(d, requires_grad)
    shape = _shape_arg(shape)
    arr = np.empty(shape, d.np) if fill is None else np.full(shape, fill, d.np)
    return Tensor._make(arr, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros with the given size."""
    shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, Size)) else size
    if builtins_any(isinstance(n, numbers.Integral) and n < 0 for n in shape):
        raise RuntimeError("zeros: Dimension size must be non-negative.")
    return _filled(size, 0.0, dtype, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones with the given size."""
    return _filled(size, 1.0, dtype, requires_grad, device)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor with the given size."""
    return _filled(size, None, dtype, requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value`` (its dtype follows the value, as in PyTorch)."""
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _filled((size,) if isinstance(size, numbers.Integral) else size, fill_value,
                   dtype, requires_grad, device)


def _like(t, fill, dtype, requires_grad):
    return _filled(t.shape, fill, dtype if dtype is not None else t.dtype, requires_grad, None)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like(input, 0, dtype, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like(input, 1, dtype, requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like(input, None, dtype, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return _like(input, fill_value, dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` up to (not including) ``end`` in steps of ``step``."""
    _check_device(device)
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dt.int64 if ints else dt.get_default_dtype()
    d = dt.to_dtype(dtype)
    _require_grad_ok(d, requires_grad)
    n = int(np.ceil((end - start) / step))
    arr = (start + step * np.arange(n, dtype=np.float64)).astype(d.np) if d.kind == 2 else \
        np.arange(start, end, step, dtype=d.np)
    return Tensor._make(arr, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` values evenly spaced from ``start`` to ``end`` inclusive."""
    _check_device(device)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    d = dt.to_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    _require_grad_ok(d, requires_grad)
    return Tensor._make(np.linspace(start, end, steps).astype(d.np), requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """A 2-D tensor with ones on the diagonal."""
    _check_device(device)
    d = dt.to_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    _require_grad_ok(d, requires_grad)
    return Tensor._make(np.eye(n, m, dtype=d.np), requires_grad)
