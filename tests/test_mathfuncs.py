"""Accuracy, special values and vectorisation of jitgrad.kernels.cpu.mathfuncs.

float32: every function runs through a tiny @njit loop compiled with the
project's kernel flags and is compared with numpy's float64 result rounded to
float32; the error is the distance in float32 ulps (ordinal distance of the
bit patterns, so subnormals count in their own ulps). Samples: ~4M values
spread over every binade of the float32 range (a Weyl sequence through all
2**32 bit patterns, nan patterns included), exhaustive windows of 2**16
consecutive floats around each function's critical points, and explicit edge
cases. float64 is compared with a long-double reference.
"""
import hashlib
import math
import platform
import re
from pathlib import Path

import numpy as np
import pytest
from numba import njit, types

from jitgrad.kernels.cpu import mathfuncs as mf

# the flags of kernels/cpu/config.py (spelled out: that file is not under test)
FLAGS = dict(cache=True, nogil=True, error_model="numpy",
             fastmath={"reassoc", "contract"})

F32_MAX_ULP = 2
F64_MAX_ULP = {"exp": 1, "log": 1, "tanh": 2, "sigmoid": 2.5}
F64_MAX_REL = 1e-15


# ------------------------------------------------------------ test kernels
# Numba's disk cache is keyed on this file, not on mathfuncs.py, so a cached
# kernel would keep the old inlined code after mathfuncs.py changes. The
# kernels are closures over a hash of mathfuncs.py: closure values are part
# of Numba's cache key, so an edit there recompiles them.
_MF_STAMP = hashlib.sha256(Path(mf.__file__).read_bytes()).hexdigest()


def _make_loop(f):
    stamp = _MF_STAMP

    @njit(**FLAGS)
    def loop(x):
        stamp  # noqa: B018  (puts the hash in the cache key)
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = f(x[i])
        return out
    return loop


def _make_scalar(f):
    stamp = _MF_STAMP

    @njit(**FLAGS)
    def scalar(x):
        stamp  # noqa: B018
        return f(x)
    return scalar


_FUNCS = {"exp": mf.exp, "log": mf.log, "tanh": mf.tanh, "sigmoid": mf.sigmoid}
LOOPS = {k: _make_loop(f) for k, f in _FUNCS.items()}
SCALARS = {k: _make_scalar(f) for k, f in _FUNCS.items()}
NAMES = list(LOOPS)


# -------------------------------------------------------------- references
def _sigmoid_ref(x):
    # exact formula in x's precision; exp(-x) overflowing to inf gives 0,
    # which is then the correctly rounded float32/float64 answer too
    return 1 / (1 + np.exp(-x))


REFS = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sigmoid": _sigmoid_ref}


def _ref(name, x, wide):
    with np.errstate(all="ignore"):
        return REFS[name](x.astype(wide)).astype(x.dtype if wide is np.float64
                                                  else wide)


# ------------------------------------------------------------- ulp metrics
def _ordinal32(a):
    i = np.ascontiguousarray(a, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def ulp_err32(out, ref32):
    """float32 ulp distance per element; nan must match nan exactly."""
    nan_out, nan_ref = np.isnan(out), np.isnan(ref32)
    bad = nan_out != nan_ref
    d = np.abs(_ordinal32(out) - _ordinal32(ref32)).astype(np.float64)
    d[nan_ref] = 0.0
    d[bad] = np.inf
    return d


def ulp_err64(out, ref):
    """float64 ulps of |out - ref| for a long-double ``ref``."""
    with np.errstate(over="ignore"):
        ref64 = ref.astype(np.float64)
    nan_out, nan_ref = np.isnan(out), np.isnan(ref64)
    err = np.zeros(out.shape)
    fin = np.isfinite(ref64) & np.isfinite(out)
    diff = np.abs(out[fin].astype(np.longdouble) - ref[fin])
    err[fin] = (diff / np.spacing(np.abs(ref64[fin])).astype(np.longdouble)
                ).astype(np.float64)
    inf = ~fin & ~nan_ref
    err[inf & (out != ref64)] = np.inf
    err[nan_out != nan_ref] = np.inf
    return err


def _check32(name, x, limit=F32_MAX_ULP):
    out = LOOPS[name](x)
    assert out.dtype == np.float32
    ref32 = _ref(name, x, np.float64)
    err = ulp_err32(out, ref32)
    i = int(np.argmax(err))
    assert err[i] <= limit, (
        f"{name}(float32 {x[i]!r}) = {out[i]!r}, want {ref32[i]!r}: "
        f"{err[i]} ulp")
    return err.max()


# ----------------------------------------------------------------- samples
def _dense32(n=1 << 22, stride=2654435761):
    """n float32 values stepping through all 2**32 bit patterns (Weyl)."""
    bits = (np.arange(n, dtype=np.uint64) * np.uint64(stride)) & np.uint64(0xFFFFFFFF)
    return bits.astype(np.uint32).view(np.float32)


def _dense64(n=1 << 20, stride=0x9E3779B97F4A7C15):
    bits = np.arange(n, dtype=np.uint64) * np.uint64(stride)  # wraps mod 2**64
    return bits.view(np.float64)


def _window32(centres, half=1 << 15):
    """All float32 within ``half`` ulps of each centre (same sign side)."""
    parts = []
    for c in centres:
        b = int(np.float32(c).view(np.uint32))
        lo = max(b - half, b & 0x80000000)
        parts.append(np.arange(lo, b + half, dtype=np.uint32))
    return np.concatenate(parts).view(np.float32)


F32 = np.finfo(np.float32)
TINY32 = np.float32(F32.smallest_subnormal)
COMMON32 = [0.0, -0.0, np.inf, -np.inf, np.nan, TINY32, -TINY32,
            F32.smallest_normal, -F32.smallest_normal,
            F32.smallest_normal - TINY32, -(F32.smallest_normal - TINY32),
            F32.max, -F32.max, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1e-30,
            -1e-30, 1e-8, -1e-8, 1e30, -1e30]

# points where the behaviour changes: overflow, subnormal and zero
# thresholds, log near 1, the tanh small-|x| switch, saturation
CRITICAL32 = {
    "exp": [88.72283935546875, 88.0, -87.33654, -103.27893, -103.97208,
            -104.0, 0.34657359, -0.34657359, 1e-7, -1e-7, 10.0, -10.0],
    "log": [1.0, 0.9999, 1.0001, 1.41421356, 0.70710678, 2.0, 0.5, 1e-40,
            1e-44, F32.max, F32.smallest_normal],
    "tanh": [0.03125, -0.03125, 0.0312, 1e-4, -1e-4, 9.0109, -9.0109, 0.55,
             1e-20, 5.0, -5.0],
    "sigmoid": [-100.0, -103.27893, -103.97208, -87.33654, -16.6355,
                16.6355, 17.0, 88.7, 0.0, 1e-7, -1e-7, -1.0, 3.0, -15.0],
}


def _edges32(name):
    vals = np.array(COMMON32 + CRITICAL32[name], dtype=np.float32)
    b = vals.view(np.int32)
    near = [(b + k).view(np.float32) for k in range(-8, 9)]
    return np.concatenate(near + [vals])


# ---------------------------------------------------------- metric sanity
def test_ulp_metric_counts_float32_ulps():
    one = np.float32(1)
    a = np.array([np.nextafter(one, np.float32(2)), TINY32, -TINY32, F32.max,
                  np.float32(0)], dtype=np.float32)
    b = np.array([one, 0, TINY32, np.inf, -0.0], dtype=np.float32)
    assert ulp_err32(a, b).tolist() == [1, 1, 2, 1, 0]
    assert ulp_err32(np.array([np.nan, 1], np.float32),
                     np.array([1, np.nan], np.float32)).tolist() == [np.inf] * 2


def test_check_detects_3_ulp_error():
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    good = np.exp(x.astype(np.float64)).astype(np.float32)
    bad = (good.view(np.int32) + 3).view(np.float32)
    assert ulp_err32(bad, good).max() == 3 > F32_MAX_ULP


# ---------------------------------------------------------- float32 tests
@pytest.mark.parametrize("name", NAMES)
def test_float32_dense_all_binades(name):
    _check32(name, _dense32())


@pytest.mark.parametrize("name", NAMES)
def test_float32_critical_windows(name):
    _check32(name, _window32(CRITICAL32[name]))


@pytest.mark.parametrize("name", NAMES)
def test_float32_edge_cases(name):
    _check32(name, _edges32(name))


@pytest.mark.parametrize("name", NAMES)
def test_float32_result_type(name):
    SCALARS[name](np.float32(0.5))
    sig = [s for s in SCALARS[name].nopython_signatures
           if s.args == (types.float32,)][0]
    assert sig.return_type == types.float32
    assert LOOPS[name](np.ones(3, np.float32)).dtype == np.float32


_INF, _NAN = math.inf, math.nan
SPECIAL = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (_INF, _INF), (-_INF, 0.0), (_NAN, _NAN),
            (1000.0, _INF), (-1000.0, 0.0), (1e-30, 1.0), (-1e-30, 1.0)],
    "log": [(1.0, 0.0), (0.0, -_INF), (-0.0, -_INF), (_INF, _INF),
            (-1.0, _NAN), (-_INF, _NAN), (_NAN, _NAN), (-1e-30, _NAN)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (_INF, 1.0), (-_INF, -1.0),
             (_NAN, _NAN), (20.0, 1.0), (-20.0, -1.0), (1e30, 1.0),
             (-1e30, -1.0), (1e-30, 1e-30), (-1e-30, -1e-30)],
    "sigmoid": [(0.0, 0.5), (-0.0, 0.5), (_INF, 1.0), (-_INF, 0.0),
                (_NAN, _NAN), (100.0, 1.0), (1e30, 1.0), (-1000.0, 0.0),
                (-1e30, 0.0)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_special_values_bitwise(name, dtype):
    cases = list(SPECIAL[name])
    if name == "tanh":
        tiny = np.finfo(dtype).smallest_subnormal
        cases += [(tiny, tiny), (-tiny, -tiny)]
    x = np.array([c[0] for c in cases], dtype=dtype)
    want = np.array([c[1] for c in cases], dtype=dtype)
    out = LOOPS[name](x)
    assert out.dtype == dtype
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(out), nan), (x, out)
    ibits = {np.float32: np.int32, np.float64: np.int64}[dtype]
    got_bits, want_bits = out.view(ibits)[~nan], want.view(ibits)[~nan]
    assert np.array_equal(got_bits, want_bits), (x[~nan], out[~nan], want[~nan])


def test_float32_sigmoid_negative_subnormal_range():
    # relative accuracy down into the float32 subnormals: never flushed to 0
    x = np.linspace(-103.2, -80.0, 200001, dtype=np.float32)
    out = LOOPS["sigmoid"](x)
    assert (out > 0).all()
    assert np.float32(3.7e-44) <= LOOPS["sigmoid"](np.array([-100.0], np.float32))[0]
    _check32("sigmoid", x)


# ---------------------------------------------------------- float64 tests
_EXTENDED = np.finfo(np.longdouble).nmant >= 63
needs_long_double = pytest.mark.skipif(
    not _EXTENDED, reason="needs an 80-bit long double reference")


def _edges64(name):
    f = np.finfo(np.float64)
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, f.smallest_subnormal,
            f.smallest_normal, f.max, -f.max, 1.0, -1.0, 0.5, 1e-300, -1e-300,
            1e-10, -1e-10, 709.78, -708.4, -745.1, -740.0, 20.0, -20.0, 36.0,
            -36.0, 0.55, -0.55, 1e-8, 1 + 1e-12, 1 - 1e-12]
    v = np.array(vals, dtype=np.float64)
    b = v.view(np.int64)
    return np.concatenate([(b + k).view(np.float64) for k in range(-4, 5)])


@needs_long_double
@pytest.mark.parametrize("name", NAMES)
def test_float64_accuracy(name):
    rng = np.random.default_rng(1)
    x = np.concatenate([_dense64(), _edges64(name),
                        rng.uniform(-40, 40, 1 << 18),
                        rng.uniform(-750, 750, 1 << 16)])
    out = LOOPS[name](x)
    assert out.dtype == np.float64
    ref = _ref(name, x, np.longdouble)
    err = ulp_err64(out, ref)
    i = int(np.argmax(err))
    assert err[i] <= F64_MAX_ULP[name], (
        f"{name}({x[i]!r}) = {out[i]!r}, want {ref[i]!r}: {err[i]:.3f} ulp")
    with np.errstate(over="ignore"):
        ref64 = ref.astype(np.float64)
    normal = np.isfinite(ref64) & (np.abs(ref64) >= np.finfo(np.float64).smallest_normal)
    rel = np.abs(out[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= F64_MAX_REL


# --------------------------------------------------------- vectorisation
def test_float32_loop_vectorises_without_libm_calls():
    @njit(error_model="numpy", fastmath={"reassoc", "contract"})
    def all4(x, out):
        for i in range(x.size):
            out[i] = (mf.exp(x[i]) + mf.log(x[i]) + mf.tanh(x[i])
                      + mf.sigmoid(x[i]))

    x = np.ones(8, np.float32)
    all4(x, np.empty_like(x))
    llvm = all4.inspect_llvm(all4.signatures[0])
    calls = set(re.findall(r"call [^@]*@([\w.]+)\(", llvm))
    libm = {c for c in calls if re.search(r"exp|log|tanh", c)}
    assert not libm, libm
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert re.search(r"<\d+ x double>", llvm), "float32 loop not vectorised"
