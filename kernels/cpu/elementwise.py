"""Elementwise kernels: unary, binary, comparison, select, clamp and cast.

Each family is one function over 1-D arrays that switches on an op code
outside its loop, so a call runs one tight loop (vectorised when the arrays
are contiguous) and the family compiles once per dtype. Every family has an
``*_nd`` twin over 4-D views: the caller broadcasts and coalesces operands to
at most four dimensions (zero strides for broadcast axes) and the twin runs
the 1-D body over each innermost row.
"""
import math

import numpy as np
from numba import types
from numba.extending import overload

from . import mathfuncs as mf
from .config import inline_kernel, kernel

# unary op codes
NEG, EXP, LOG, SQRT, SIN, COS, TANH, SIGMOID, RELU, ABS, SIGN, RECIPROCAL = range(12)
FINITE_OR_ZERO = 12  # x where finite, else 0 (the shift in a stable logsumexp)
RSQRT = 13
# binary op codes
ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM, FLOORDIV, REMAINDER, FMOD = range(10)
THRESHOLD_BACKWARD = 10  # a where b > 0 else 0 (ReLU's backward, b its output; NaN passes a)
TANH_BACKWARD = 11       # a * (1 - b * b): tanh's backward, b its output
SIGMOID_BACKWARD = 12    # a * b * (1 - b): sigmoid's backward, b its output
# comparison and logical op codes (bool output)
EQ, NE, LT, LE, GT, GE, AND, OR, XOR = range(9)


def _fmod(a, b):
    return np.fmod(a, b)


@overload(_fmod)
def _fmod_impl(a, b):
    """C's fmod (the dividend's sign). numba's np.fmod is wrong for integers, so ints adjust
    Python's modulus instead."""
    if isinstance(a, types.Integer):
        def impl(a, b):
            r = a % b
            if r != 0 and (r < 0) != (a < 0):
                r -= b
            return r
        return impl
    return lambda a, b: np.fmod(a, b)


@kernel
def unary(op, x, out):
    """out = f(x) for a floating ``f``; x and out are 1-D of one float dtype."""
    _unary_into(op, x, out)


@kernel
def unary_in_place(op, x):
    """x = f(x), through one array: over two arrays of the same memory LLVM's check that
    they do not overlap fails and the loop runs unvectorised (exp 4x, tanh 6x slower)."""
    _unary_into(op, x, x)


@inline_kernel
def _unary_into(op, x, out):
    n = x.shape[0]
    one = x.dtype.type(1)
    zero = x.dtype.type(0)
    if op == NEG:
        for i in range(n):
            out[i] = -x[i]
    elif op == EXP:
        for i in range(n):
            out[i] = mf.exp(x[i])
    elif op == LOG:
        for i in range(n):
            out[i] = mf.log(x[i])
    elif op == SQRT:
        for i in range(n):
            out[i] = np.sqrt(x[i])
    elif op == SIN:
        for i in range(n):
            out[i] = math.sin(x[i])
    elif op == COS:
        for i in range(n):
            out[i] = math.cos(x[i])
    elif op == TANH:
        for i in range(n):
            out[i] = mf.tanh(x[i])
    elif op == SIGMOID:
        for i in range(n):
            out[i] = mf.sigmoid(x[i])
    elif op == RELU:
        for i in range(n):
            v = x[i]
            out[i] = v if v > zero or v != v else zero
    elif op == ABS:
        for i in range(n):
            out[i] = abs(x[i])
    elif op == SIGN:
        for i in range(n):
            v = x[i]
            out[i] = one if v > zero else (-one if v < zero else v)
    elif op == RECIPROCAL:
        for i in range(n):
            out[i] = one / x[i]
    elif op == RSQRT:
        for i in range(n):
            out[i] = one / np.sqrt(x[i])
    elif op == FINITE_OR_ZERO:
        for i in range(n):
            v = x[i]
            out[i] = v if v - v == zero else zero


@kernel
def unary_int(op, x, out):
    """The unary ops that keep integer dtypes: neg, abs, sign, relu."""
    n = x.shape[0]
    zero = x.dtype.type(0)
    if op == NEG:
        for i in range(n):
            out[i] = -x[i]
    elif op == ABS:
        for i in range(n):
            out[i] = abs(x[i])
    elif op == SIGN:
        for i in range(n):
            out[i] = (x[i] > zero) - (x[i] < zero)
    elif op == RELU:
        for i in range(n):
            out[i] = max(x[i], zero)


@kernel
def binary(op, a, b, out):
    """out = a (op) b over 1-D arrays of one numeric dtype."""
    _binary_into(op, a, b, out)


@kernel
def binary_in_place(op, a, b, into_a):
    """a = a (op) b (``into_a``) or b = a (op) b, through one array (see
    ``unary_in_place``)."""
    if into_a:
        _binary_into(op, a, b, a)
    else:
        _binary_into(op, a, b, b)


@inline_kernel
def _binary_into(op, a, b, out):
    n = out.shape[0]
    if op == ADD:
        for i in range(n):
            out[i] = a[i] + b[i]
    elif op == SUB:
        for i in range(n):
            out[i] = a[i] - b[i]
    elif op == MUL:
        for i in range(n):
            out[i] = a[i] * b[i]
    elif op == DIV:
        for i in range(n):
            out[i] = a[i] / b[i]
    elif op == POW:
        for i in range(n):
            out[i] = a[i] ** b[i]
    elif op == MAXIMUM:
        for i in range(n):
            x = a[i]
            y = b[i]
            out[i] = x if x > y or x != x else y
    elif op == MINIMUM:
        for i in range(n):
            x = a[i]
            y = b[i]
            out[i] = x if x < y or x != x else y
    elif op == FLOORDIV:
        for i in range(n):
            out[i] = a[i] // b[i]
    elif op == REMAINDER:
        for i in range(n):
            out[i] = a[i] % b[i]
    elif op == FMOD:
        for i in range(n):
            out[i] = _fmod(a[i], b[i])
    elif op == THRESHOLD_BACKWARD:
        zero = out.dtype.type(0)
        for i in range(n):
            out[i] = zero if b[i] <= zero else a[i]
    elif op == TANH_BACKWARD:
        one = out.dtype.type(1)
        for i in range(n):
            y = b[i]
            out[i] = a[i] * (one - y * y)
    elif op == SIGMOID_BACKWARD:
        one = out.dtype.type(1)
        for i in range(n):
            y = b[i]
            out[i] = a[i] * y * (one - y)


@kernel
def binary_rows(op, a, b, out):
    """out[r] = a[r] (op) b for each row r of C-contiguous 2-D ``a`` and ``out`` and a
    1-D ``b`` (a bias added to every row of a matrix): one vectorised loop per row."""
    if op == ADD:  # a bias: one loop nest (a call per row costs as much as its work)
        if a.ctypes.data == out.ctypes.data:  # in place: a loop LLVM vectorises (the
            for r in range(out.shape[0]):     # alias check of out = a + b would fail)
                orow = out[r]
                for j in range(out.shape[1]):
                    orow[j] += b[j]
            return
        for r in range(out.shape[0]):
            ar, orow = a[r], out[r]
            for j in range(out.shape[1]):
                orow[j] = ar[j] + b[j]
        return
    for r in range(out.shape[0]):
        binary(op, a[r], b, out[r])


@kernel
def compare(op, a, b, out):
    """out (bool) = a (op) b over 1-D arrays of one dtype."""
    n = out.shape[0]
    if op == EQ:
        for i in range(n):
            out[i] = a[i] == b[i]
    elif op == NE:
        for i in range(n):
            out[i] = a[i] != b[i]
    elif op == LT:
        for i in range(n):
            out[i] = a[i] < b[i]
    elif op == LE:
        for i in range(n):
            out[i] = a[i] <= b[i]
    elif op == GT:
        for i in range(n):
            out[i] = a[i] > b[i]
    elif op == GE:
        for i in range(n):
            out[i] = a[i] >= b[i]
    elif op == AND:
        for i in range(n):
            out[i] = (a[i] != 0) & (b[i] != 0)
    elif op == OR:
        for i in range(n):
            out[i] = (a[i] != 0) | (b[i] != 0)
    elif op == XOR:
        for i in range(n):
            out[i] = (a[i] != 0) ^ (b[i] != 0)


@kernel
def where(cond, a, b, out):
    """out = a where cond else b, over 1-D arrays."""
    for i in range(out.shape[0]):
        out[i] = a[i] if cond[i] else b[i]


@kernel
def clamp(x, lo, hi, out):
    """out = min(max(x, lo), hi); NaN stays NaN. Pass -inf/inf for no bound."""
    for i in range(out.shape[0]):
        v = x[i]
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        out[i] = v


@kernel
def pow_scalar(x, p, out):
    """out = x ** p for a scalar exponent, with exact fast paths for common ``p``."""
    n = out.shape[0]
    one = x.dtype.type(1)
    if p == 2.0:
        for i in range(n):
            out[i] = x[i] * x[i]
    elif p == 1.0:
        for i in range(n):
            out[i] = x[i]
    elif p == 3.0:
        for i in range(n):
            out[i] = x[i] * x[i] * x[i]
    elif p == 0.5:
        for i in range(n):
            out[i] = np.sqrt(x[i])
    elif p == -1.0:
        for i in range(n):
            out[i] = one / x[i]
    elif p == 0.0:
        for i in range(n):
            out[i] = one
    else:
        for i in range(n):
            out[i] = math.pow(np.float64(x[i]), p)


@kernel
def cast(x, out):
    """out = x converted to out's dtype (also a plain strided copy)."""
    for i in range(out.shape[0]):
        out[i] = x[i]


# --- 4-D twins: run the 1-D body over every innermost row ---------------------

@kernel
def unary_nd(op, x, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                unary(op, x[i, j, k], out[i, j, k])


@kernel
def unary_int_nd(op, x, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                unary_int(op, x[i, j, k], out[i, j, k])


@kernel
def binary_nd(op, a, b, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                binary(op, a[i, j, k], b[i, j, k], out[i, j, k])


@kernel
def compare_nd(op, a, b, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                compare(op, a[i, j, k], b[i, j, k], out[i, j, k])


@kernel
def where_nd(cond, a, b, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                where(cond[i, j, k], a[i, j, k], b[i, j, k], out[i, j, k])


@kernel
def clamp_nd(x, lo, hi, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                clamp(x[i, j, k], lo, hi, out[i, j, k])


@kernel
def pow_scalar_nd(x, p, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                pow_scalar(x[i, j, k], p, out[i, j, k])


@kernel
def cast_nd(x, out):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for k in range(out.shape[2]):
                cast(x[i, j, k], out[i, j, k])
