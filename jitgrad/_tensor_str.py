"""PyTorch-compatible tensor printing over plain numpy arrays.

This module reimplements the algorithm of ``torch/_tensor_str.py`` (the code
behind ``repr(tensor)`` / ``str(tensor)``) for dense CPU tensors whose data is
held in a numpy array, so that a jitgrad tensor prints byte for byte like the
equivalent PyTorch tensor (with ``jitgrad.`` in place of ``torch.`` in dtype
names).  It deliberately does not import torch.

Public API:

* :func:`tensor_repr` -- the full ``tensor(...)`` string.
* :func:`set_printoptions`, :func:`get_printoptions`, :func:`printoptions`
  -- same semantics and defaults as their ``torch`` counterparts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

__all__ = [
    "tensor_repr",
    "set_printoptions",
    "get_printoptions",
    "printoptions",
]

# dtypes that PyTorch does not name in the repr of a non-empty tensor
# (the default dtype, its complex counterpart, int64 and bool).
_DEFAULT_DTYPE_NAME = "float32"
_IMPLICIT_DTYPE_NAMES = frozenset({"float32", "complex64", "int64", "bool"})


@dataclasses.dataclass
class _PrinterOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: Optional[bool] = None


PRINT_OPTS = _PrinterOptions()


def set_printoptions(
    precision=None,
    threshold=None,
    edgeitems=None,
    linewidth=None,
    profile=None,
    sci_mode=None,
):
    """Set options for printing (same semantics as ``torch.set_printoptions``).

    Args:
        precision: digits of precision for floating point output (default 4).
        threshold: total number of elements above which the output is
            summarised with ``...`` (default 1000).
        edgeitems: number of items shown at the beginning and end of each
            dimension when summarising (default 3).
        linewidth: characters per line used for inserting line breaks
            (default 80).
        profile: ``'default'``, ``'short'`` or ``'full'``; sets the options
            above, which any explicitly given option then overrides.
        sci_mode: ``True``/``False`` to force/disable scientific notation;
            ``None`` (default) chooses automatically.  Like PyTorch, every call
            resets it to the value passed (``None`` when omitted).
    """
    if profile is not None:
        if profile == "default":
            PRINT_OPTS.precision = 4
            PRINT_OPTS.threshold = 1000
            PRINT_OPTS.edgeitems = 3
            PRINT_OPTS.linewidth = 80
        elif profile == "short":
            PRINT_OPTS.precision = 2
            PRINT_OPTS.threshold = 1000
            PRINT_OPTS.edgeitems = 2
            PRINT_OPTS.linewidth = 80
        elif profile == "full":
            PRINT_OPTS.precision = 4
            PRINT_OPTS.threshold = math.inf
            PRINT_OPTS.edgeitems = 3
            PRINT_OPTS.linewidth = 80

    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict[str, Any]:
    """Current print options as a dict that can be passed to
    :func:`set_printoptions` as keyword arguments."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs) -> Iterator[None]:
    """Context manager that temporarily changes the print options."""
    old_kwargs = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**old_kwargs)


# ---------------------------------------------------------------------------
# element formatting
# ---------------------------------------------------------------------------


def _is_floating(arr: np.ndarray) -> bool:
    return arr.dtype.kind == "f"


def _is_complex(arr: np.ndarray) -> bool:
    return arr.dtype.kind == "c"


class _Formatter:
    """Port of ``torch._tensor_str._Formatter`` for a real-valued array.

    ``arr`` is the (possibly summarised) data that determines the mode and
    the common element width.
    """

    def __init__(self, arr: np.ndarray):
        self.floating_dtype = _is_floating(arr)
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1

        flat = arr.reshape(-1)

        if not self.floating_dtype:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(f"{value}"))
            return

        # All arithmetic is done on the float64 upcast, as PyTorch does
        # (tensor_totype converts to double on CPU).
        flat = flat.astype(np.float64)
        nonzero_finite_vals = flat[np.isfinite(flat) & (flat != 0)]
        if nonzero_finite_vals.size == 0:
            # no valid number, do nothing
            return

        nonzero_finite_abs = np.abs(nonzero_finite_vals)
        nonzero_finite_min = float(nonzero_finite_abs.min())
        nonzero_finite_max = float(nonzero_finite_abs.max())

        self.int_mode = bool(np.all(nonzero_finite_vals == np.ceil(nonzero_finite_vals)))

        if PRINT_OPTS.sci_mode is None:
            with np.errstate(over="ignore"):
                ratio = np.float64(nonzero_finite_max) / np.float64(nonzero_finite_min)
            self.sci_mode = bool(
                ratio > 1000.0
                or nonzero_finite_max > 1.0e8
                or nonzero_finite_min < 1.0e-4
            )
        else:
            self.sci_mode = PRINT_OPTS.sci_mode

        values = nonzero_finite_vals.tolist()
        precision = PRINT_OPTS.precision
        if self.sci_mode:
            spec = f"{{:.{precision}e}}"
            width = max(len(spec.format(v)) for v in values)
        elif self.int_mode:
            # in int_mode for floats, all numbers are integers, and a decimal
            # point is appended to finite values: account for it with + 1.
            width = max(len(f"{v:.0f}") for v in values) + 1
        else:
            spec = f"{{:.{precision}f}}"
            width = max(len(spec.format(v)) for v in values)
        self.max_width = max(self.max_width, width)

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        if self.floating_dtype:
            if self.sci_mode:
                ret = f"{{:{self.max_width}.{PRINT_OPTS.precision}e}}".format(value)
            elif self.int_mode:
                ret = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    ret += "."
            else:
                ret = f"{{:.{PRINT_OPTS.precision}f}}".format(value)
        else:
            ret = f"{value}"
        return (self.max_width - len(ret)) * " " + ret


def _to_py_list(arr: np.ndarray) -> list:
    """Elements as Python scalars (floats exactly upcast to double)."""
    if _is_floating(arr) and arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    elif _is_complex(arr) and arr.dtype != np.complex128:
        arr = arr.astype(np.complex128)
    return arr.tolist()


def _complex_join(real_str: str, imag_str: str) -> str:
    imag_str = (imag_str + "j").lstrip()
    # handles negative numbers, +0.0, -0.0
    if imag_str[0] == "+" or imag_str[0] == "-":
        return real_str + imag_str
    return real_str + "+" + imag_str


def _val_str(val, formatter1: _Formatter, formatter2: Optional[_Formatter]) -> str:
    if formatter2 is not None:
        return _complex_join(formatter1.format(val.real), formatter2.format(val.imag))
    return formatter1.format(val)


def _scalar_str(arr: np.ndarray, formatter1, formatter2=None) -> str:
    return _val_str(_to_py_list(arr), formatter1, formatter2)


def _vector_str(arr: np.ndarray, indent: int, summarize: bool, formatter1, formatter2=None) -> str:
    # length includes spaces and comma between elements
    element_length = formatter1.width() + 2
    if formatter2 is not None:
        # width for imag_formatter + an extra j for complex
        element_length += formatter2.width() + 1

    elements_per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / element_length))

    edgeitems = PRINT_OPTS.edgeitems
    if summarize and not edgeitems:
        data = ["..."]
    elif summarize and arr.shape[0] > 2 * edgeitems:
        data = (
            [_val_str(v, formatter1, formatter2) for v in _to_py_list(arr[:edgeitems])]
            + [" ..."]
            + [_val_str(v, formatter1, formatter2) for v in _to_py_list(arr[-edgeitems:])]
        )
    else:
        data = [_val_str(v, formatter1, formatter2) for v in _to_py_list(arr)]

    lines = [
        ", ".join(data[i : i + elements_per_line])
        for i in range(0, len(data), elements_per_line)
    ]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _tensor_str_with_formatter(arr: np.ndarray, indent: int, summarize: bool, formatter1, formatter2=None) -> str:
    dim = arr.ndim
    if dim == 0:
        return _scalar_str(arr, formatter1, formatter2)
    if dim == 1:
        return _vector_str(arr, indent, summarize, formatter1, formatter2)

    edgeitems = PRINT_OPTS.edgeitems
    n = arr.shape[0]
    if summarize and n > 2 * edgeitems:
        slices = (
            [
                _tensor_str_with_formatter(arr[i], indent + 1, summarize, formatter1, formatter2)
                for i in range(edgeitems)
            ]
            + ["..."]
            + [
                _tensor_str_with_formatter(arr[i], indent + 1, summarize, formatter1, formatter2)
                for i in range(n - edgeitems, n)
            ]
        )
    else:
        slices = [
            _tensor_str_with_formatter(arr[i], indent + 1, summarize, formatter1, formatter2)
            for i in range(n)
        ]

    tensor_str = ("," + "\n" * (dim - 1) + " " * (indent + 1)).join(slices)
    return "[" + tensor_str + "]"


def _get_summarized_data(arr: np.ndarray) -> np.ndarray:
    """The elements that are actually shown when summarising."""
    dim = arr.ndim
    edgeitems = PRINT_OPTS.edgeitems
    if dim == 0:
        return arr
    if dim == 1:
        if arr.shape[0] > 2 * edgeitems:
            # NB: with edgeitems == 0, arr[-0:] is the whole array (as in torch)
            return np.concatenate((arr[:edgeitems], arr[-edgeitems:]))
        return arr
    if not edgeitems:
        return np.empty([0] * dim, dtype=arr.dtype)
    if arr.shape[0] > 2 * edgeitems:
        rows = list(range(edgeitems)) + list(range(arr.shape[0] - edgeitems, arr.shape[0]))
    else:
        rows = range(arr.shape[0])
    return np.stack([_get_summarized_data(arr[i]) for i in rows])


def _tensor_str(arr: np.ndarray, indent: int) -> str:
    if arr.size == 0:
        return "[]"

    summarize = arr.size > PRINT_OPTS.threshold
    data = _get_summarized_data(arr) if summarize else arr

    if _is_complex(arr):
        real_formatter = _Formatter(np.ascontiguousarray(data.real))
        imag_formatter = _Formatter(np.ascontiguousarray(data.imag))
        return _tensor_str_with_formatter(arr, indent, summarize, real_formatter, imag_formatter)
    formatter = _Formatter(data)
    return _tensor_str_with_formatter(arr, indent, summarize, formatter)


def _add_suffixes(tensor_str: str, suffixes: Sequence[str], indent: int, force_newline: bool) -> str:
    tensor_strs = [tensor_str]
    # (sic) PyTorch's computation, including its off-by-two, reproduced as is
    last_line_len = len(tensor_str) - tensor_str.rfind("\n") + 1
    for suffix in suffixes:
        suffix_len = len(suffix)
        if force_newline or last_line_len + suffix_len + 2 > PRINT_OPTS.linewidth:
            tensor_strs.append(",\n" + " " * indent + suffix)
            last_line_len = indent + suffix_len
            force_newline = False
        else:
            tensor_strs.append(", " + suffix)
            last_line_len += suffix_len + 2
    tensor_strs.append(")")
    return "".join(tensor_strs)


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------


def tensor_repr(values: np.ndarray, dtype_name: str, suffixes: Optional[List[str]] = None) -> str:
    """``repr`` of a tensor, formatted exactly as PyTorch formats it.

    Args:
        values: the tensor's data (any shape, including 0-d and empty).
        dtype_name: the tensor's dtype name, e.g. ``'float32'``, ``'float64'``,
            ``'int64'``, ``'int32'``, ``'bool'``.  ``values`` is converted to
            this dtype if it is held in another one.
        suffixes: ready-made strings appended inside the parentheses, in
            order, after the ones PyTorch adds itself (``size=...``,
            ``dtype=...``), e.g. ``['requires_grad=True']`` or
            ``['grad_fn=<MulBackward0>']``.
    """
    arr = np.asarray(values)
    try:
        np_dtype = np.dtype(dtype_name)
    except TypeError:
        np_dtype = None
    if np_dtype is not None and arr.dtype != np_dtype:
        arr = arr.astype(np_dtype)

    prefix = "tensor("
    indent = len(prefix)
    all_suffixes: List[str] = []
    dtype_str = "dtype=jitgrad." + dtype_name

    if arr.size == 0:
        # Explicitly print the shape if it is not (0,), to match NumPy
        if arr.ndim != 1:
            all_suffixes.append("size=" + str(tuple(int(s) for s in arr.shape)))
        # In an empty tensor, there are no elements to infer if the dtype
        # should be int64, so it must be shown explicitly.
        if dtype_name != _DEFAULT_DTYPE_NAME:
            all_suffixes.append(dtype_str)
        tensor_str = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            all_suffixes.append("size=" + str(tuple(int(s) for s in arr.shape)))
        if dtype_name not in _IMPLICIT_DTYPE_NAMES:
            all_suffixes.append(dtype_str)
        tensor_str = _tensor_str(arr, indent)

    if suffixes:
        all_suffixes.extend(suffixes)

    return _add_suffixes(prefix + tensor_str, all_suffixes, indent, force_newline=False)
