"""Tests for jitgrad._tensor_str: tensor printing byte-identical to PyTorch.

Most tests compare ``tensor_repr`` against ``repr`` of the equivalent
``torch.Tensor`` and skip when torch is not installed; a handful of
hard-coded expected strings (taken from torch's output) run without torch.

Expected strings are obtained from torch with the dtype suffix renamed from
``torch.<dtype>`` to ``jitgrad.<dtype>`` *before* torch decides whether the
suffixes fit on the last line (by wrapping ``torch._tensor_str._add_suffixes``),
because the two extra characters of ``jitgrad.`` can move a suffix onto a new
line: that is PyTorch's algorithm applied to jitgrad's dtype names.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest


def _load_module():
    try:
        from jitgrad import _tensor_str as mod

        return mod
    except Exception:  # jitgrad's __init__ may be mid-rewrite: load by path
        path = Path(__file__).resolve().parents[1] / "jitgrad" / "_tensor_str.py"
        spec = importlib.util.spec_from_file_location("_jitgrad_tensor_str_by_path", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses needs the module registered
        spec.loader.exec_module(mod)
        return mod


TS = _load_module()
tensor_repr = TS.tensor_repr


def _reset_all_printoptions():
    TS.set_printoptions(profile="default")
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and hasattr(torch_mod, "set_printoptions"):
        torch_mod.set_printoptions(profile="default")


@pytest.fixture(autouse=True)
def _reset_printoptions():
    _reset_all_printoptions()
    yield
    _reset_all_printoptions()


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------------------
# helpers (torch)
# ---------------------------------------------------------------------------


def torch_expected(torch, t) -> str:
    """repr(t) as torch prints it, with dtypes named ``jitgrad.*``."""
    ts = torch._tensor_str
    orig = getattr(ts, "_add_suffixes", None)
    if orig is None:  # private helper gone in some torch version: plain rename
        return repr(t).replace("torch.", "jitgrad.")

    def renamed(tensor_str, suffixes, indent, force_newline):
        suffixes = [s.replace("torch.", "jitgrad.") for s in suffixes]
        return orig(tensor_str, suffixes, indent, force_newline=force_newline)

    ts._add_suffixes = renamed
    try:
        return repr(t)
    finally:
        ts._add_suffixes = orig


def jitgrad_repr_of(t, suffixes=None) -> str:
    if suffixes is None:
        if t.grad_fn is not None:
            suffixes = [f"grad_fn=<{type(t.grad_fn).__name__}>"]
        elif t.requires_grad:
            suffixes = ["requires_grad=True"]
        else:
            suffixes = []
    dtype_name = str(t.dtype).replace("torch.", "")
    return tensor_repr(t.detach().numpy(), dtype_name, suffixes)


def check(torch, t):
    expected = torch_expected(torch, t)
    got = jitgrad_repr_of(t)
    assert got == expected, f"\nexpected:\n{expected}\ngot:\n{got}"


def set_both(torch, **kwargs):
    torch.set_printoptions(**kwargs)
    TS.set_printoptions(**kwargs)


# ---------------------------------------------------------------------------
# hard-coded expectations (no torch needed)
# ---------------------------------------------------------------------------

HARD_CODED = [
    (np.float32(1.0), "float32", [], "tensor(1.)"),
    (np.array(-7), "int64", [], "tensor(-7)"),
    (np.array([0.0, 2.0, 8.0], np.float32), "float32", ["requires_grad=True"],
     "tensor([0., 2., 8.], requires_grad=True)"),
    (np.array([0.1, 0.2], np.float32), "float32", [], "tensor([0.1000, 0.2000])"),
    (np.array([1e-5, 1.0], np.float32), "float32", [], "tensor([1.0000e-05, 1.0000e+00])"),
    (np.array([True, False]), "bool", [], "tensor([ True, False])"),
    (np.array([np.nan, np.inf, -np.inf, 1.5], np.float32), "float32", [],
     "tensor([   nan,    inf,   -inf, 1.5000])"),
    (np.array([-0.0, 0.0, 3.0], np.float32), "float32", [], "tensor([-0., 0., 3.])"),
    (np.zeros((0, 3), np.float32), "float32", [], "tensor([], size=(0, 3))"),
    (np.zeros((0,), np.int64), "int64", [], "tensor([], dtype=jitgrad.int64)"),
    (np.array([1e300, -2.5]), "float64", [],
     "tensor([1.0000e+300, -2.5000e+00], dtype=jitgrad.float64)"),
    (np.array([[1.0, -2.0], [3.0, 4.0]], np.float32), "float32", [],
     "tensor([[ 1., -2.],\n        [ 3.,  4.]])"),
    (np.arange(12, dtype=np.int32).reshape(2, 2, 3), "int32", [],
     "tensor([[[ 0,  1,  2],\n         [ 3,  4,  5]],\n\n"
     "        [[ 6,  7,  8],\n         [ 9, 10, 11]]], dtype=jitgrad.int32)"),
    (np.arange(1001), "int64", [], "tensor([   0,    1,    2,  ...,  998,  999, 1000])"),
    (np.arange(30, dtype=np.float32), "float32", [],
     "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
     "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
     "        28., 29.])"),
    (np.array([3.0, -4.5]), "float64", ["grad_fn=<MulBackward0>"],
     "tensor([ 3.0000, -4.5000], dtype=jitgrad.float64, grad_fn=<MulBackward0>)"),
    (np.arange(6, dtype=np.float32) / 3 * 2, "float32", ["grad_fn=<MulBackward0>"],
     "tensor([0.0000, 0.6667, 1.3333, 2.0000, 2.6667, 3.3333],\n"
     "       grad_fn=<MulBackward0>)"),
    # torch prints 'tensor([10., ..., 10.], dtype=torch.float64)' on one line;
    # the two extra characters of 'jitgrad.' push the suffix past 80 columns.
    (np.full(10, 10.0), "float64", [],
     "tensor([10., 10., 10., 10., 10., 10., 10., 10., 10., 10.],\n"
     "       dtype=jitgrad.float64)"),
]


@pytest.mark.parametrize("values,dtype_name,suffixes,expected", HARD_CODED,
                         ids=[f"hard{i}" for i in range(len(HARD_CODED))])
def test_hard_coded(values, dtype_name, suffixes, expected):
    assert tensor_repr(values, dtype_name, suffixes) == expected


def test_default_printoptions():
    assert TS.get_printoptions() == {
        "precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None,
    }


def test_printoptions_hard_coded():
    TS.set_printoptions(threshold=5)
    assert tensor_repr(np.arange(10), "int64", []) == "tensor([0, 1, 2,  ..., 7, 8, 9])"
    TS.set_printoptions(precision=2)  # threshold stays, sci_mode reset
    assert tensor_repr(np.array([1.12345], np.float32), "float32", []) == "tensor([1.12])"
    TS.set_printoptions(profile="default")
    assert tensor_repr(np.array([1.12345], np.float32), "float32", []) == "tensor([1.1235])"
    with TS.printoptions(sci_mode=True, precision=1):
        assert tensor_repr(np.array([1.0, 2.0]), "float64", []) == (
            "tensor([1.0e+00, 2.0e+00], dtype=jitgrad.float64)")
    assert TS.get_printoptions()["sci_mode"] is None
    assert TS.get_printoptions()["precision"] == 4


def test_values_cast_to_declared_dtype():
    # float64 data declared float32 prints as the float32 tensor would
    assert tensor_repr(np.array([0.1, 1 / 3]), "float32", []) == "tensor([0.1000, 0.3333])"
    assert tensor_repr([1, 2], "float64", []) == "tensor([1., 2.], dtype=jitgrad.float64)"
    assert tensor_repr(np.array(1.0), "float32", None) == "tensor(1.)"


# ---------------------------------------------------------------------------
# hand-picked edge cases against torch
# ---------------------------------------------------------------------------

F64 = "dtype=torch.float64"
EDGE_CASES = [
    # 0-d
    "torch.tensor(1.)", "torch.tensor(-0.)", "torch.tensor(0.)", "torch.tensor(float('nan'))",
    "torch.tensor(float('inf'))", "torch.tensor(-float('inf'))", "torch.tensor(0.1)",
    "torch.tensor(1e-5)", "torch.tensor(1e10)", "torch.tensor(123456789.)",
    f"torch.tensor(3.5, {F64})", "torch.tensor(5)", "torch.tensor(-7, dtype=torch.int32)",
    "torch.tensor(True)", "torch.tensor(False)", "torch.tensor(2.5, requires_grad=True)",
    f"torch.tensor(1e-310, {F64})",
    # float modes
    "torch.tensor([0.1, 0.2])", "torch.tensor([0., 2., 8.])", "torch.tensor([1e-5, 1.])",
    "torch.tensor([1., 1e9])", "torch.tensor([1., 1e8])", "torch.tensor([1., 1e8 + 8])",
    "torch.tensor([1., 1000.])", "torch.tensor([1., 1001.])", "torch.tensor([0.5, 500.5])",
    "torch.tensor([1e-4, 0.05])",  # float32(1e-4) < 1e-4: sci
    f"torch.tensor([1e-4, 0.05], {F64})",  # exactly 1e-4: not sci
    "torch.tensor([123456.789, 0.001])", "torch.tensor([-1.5, 2.25, -1000.125])",
    "torch.tensor([1e20])", "torch.tensor([12345678.])", "torch.tensor([123456789.])",
    "torch.tensor([-12345678., 1.])", "torch.tensor([0.99999, 1.00001])",
    "torch.tensor([0.00005, 0.00015, 0.00025])", "torch.tensor([2.5, 3.5, -0.5])",
    # nan / inf / zeros
    "torch.tensor([float('nan')])", "torch.tensor([float('nan'), 1.])",
    "torch.tensor([float('inf'), -float('inf')])",
    "torch.tensor([float('nan'), float('inf'), -float('inf'), 1.5])",
    "torch.tensor([float('nan'), 0.1234, 1e-7])", "torch.tensor([float('nan'), 1e10])",
    "torch.tensor([0., 0.])", "torch.tensor([-0., 0.])", "torch.tensor([-0., 0., 3.])",
    "torch.tensor([-0., 0.5])", "torch.tensor([-0., 1e-6])",
    # extreme float64 / float32
    f"torch.tensor([1e300, -2.5], {F64})", f"torch.tensor([1e-300, 1e300], {F64})",
    f"torch.tensor([5e-324, 1.], {F64})",
    f"torch.tensor([1.7976931348623157e308, -1.7976931348623157e308], {F64})",
    f"torch.tensor([1e-320, -1e-310, 0.], {F64})", f"torch.tensor([1e15, 1e16 + 2], {F64})",
    f"torch.tensor([0.1, 0.2, 1/3], {F64})", f"torch.tensor([2.**53, -2.**60], {F64})",
    "torch.tensor([3.4028235e38, 1.])", "torch.tensor([1e-45, 1.])", "torch.tensor([1e-38, -1e38])",
    # bool / int
    "torch.tensor([True, False])", "torch.tensor([True, True])", "torch.tensor([False, False, False])",
    "torch.tensor([[True], [False]])", "torch.tensor([-1, 10, -100])", "torch.tensor([0])",
    "torch.tensor([-2**63, 2**63 - 1])", "torch.tensor([-2**31, 2**31 - 1], dtype=torch.int32)",
    "torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4)",
    # multi-dim
    "(torch.arange(6.) / 7).reshape(2, 3)", "torch.arange(24.).reshape(2, 3, 4) - 11.5",
    "torch.arange(120).reshape(2, 3, 4, 5)", "torch.ones(1, 1, 1)", "torch.zeros(2, 1, 3)",
    "torch.arange(32.).reshape(1, 2, 2, 2, 4) / 3", "torch.tensor([[1e-8, 1.], [2., 3.]])",
    f"torch.arange(8., {F64}).reshape(2, 2, 2) * -1e5",
    # line wrapping
    "torch.arange(30.)", "torch.arange(100.) / 3", "torch.arange(200).reshape(2, 100)",
    "(torch.arange(60.) / 7).reshape(3, 20)", "torch.arange(40.).reshape(2, 2, 10) * 1e5",
    f"torch.linspace(-1, 1, 50, {F64})", "torch.arange(50).reshape(5, 10) * 10**12",
    "(torch.arange(26.) - 13).reshape(1, 1, 1, 26) / 9",
    # summarisation
    "torch.arange(1001)", "torch.arange(1000)", "torch.arange(1001.) / 3",
    "torch.arange(2000).reshape(20, 100)", "torch.arange(1200.).reshape(3, 400)",
    "torch.arange(1200).reshape(2, 3, 200)", "torch.arange(2000.).reshape(2000, 1)",
    "torch.arange(2000.).reshape(1, 2000)", "torch.arange(1100.).reshape(10, 10, 11) - 500",
    "torch.arange(7 * 7 * 7 * 7.).reshape(7, 7, 7, 7)",
    "torch.ones(2000).index_fill(0, torch.tensor([1000]), 1e-9)",  # hidden value: no sci
    "torch.ones(2000).index_fill(0, torch.tensor([1]), 1e-9)",  # shown value: sci
    "torch.arange(2000.).reshape(40, 50).index_fill(1, torch.tensor([25]), float('nan'))",
    # empty
    "torch.zeros(0)", "torch.zeros(0, 3)", "torch.zeros(3, 0)", "torch.zeros(2, 0, 4)",
    f"torch.zeros(0, {F64})", "torch.zeros(0, dtype=torch.int32)", "torch.zeros(0, dtype=torch.int64)",
    "torch.zeros(0, 2, dtype=torch.bool)", "torch.zeros(0, requires_grad=True)",
    f"torch.zeros(1, 0, {F64}, requires_grad=True) * 2",
    # suffixes
    f"torch.tensor([1.5, -2.25], {F64}, requires_grad=True) * 2",
    "torch.arange(30., requires_grad=True)", "torch.arange(30., requires_grad=True) * 2",
    "torch.tensor(1., requires_grad=True) + 1", "torch.full((10,), 10.)",
    f"torch.full((10,), 10., {F64})", f"torch.full((10,), 10., {F64}, requires_grad=True) * 1",
    f"torch.arange(2000., {F64}, requires_grad=True).reshape(40, 50) * 1",
    "torch.arange(9., requires_grad=True).reshape(3, 3).sum(0)",
]


@pytest.mark.parametrize("expr", EDGE_CASES)
def test_edge_cases(torch, expr):
    check(torch, eval(expr, {"torch": torch, "math": math}))


SWEEP_CASES = [
    (dtype, grad)
    for dtype in ["float32", "float64", "int32", "int64", "bool"]
    for grad in [None, "requires_grad", "grad_fn"]
    if grad is None or dtype.startswith("float")  # only floats require grad
]


@pytest.mark.parametrize("dtype,grad", SWEEP_CASES)
def test_suffix_wrap_sweep(torch, dtype, grad):
    """Lengths around the 80-column boundary, where suffixes start a new line."""
    tdt = getattr(torch, dtype)
    for scale in (1, 3, 1000):
        for n in range(1, 40):
            t = (torch.arange(n) * scale).to(tdt)
            if dtype.startswith("float"):
                t = t / 7 if scale == 3 else t
            if grad == "requires_grad":
                t.requires_grad_(True)
            elif grad == "grad_fn":
                t = t.requires_grad_(True) * 1
            check(torch, t)


# ---------------------------------------------------------------------------
# print options against torch
# ---------------------------------------------------------------------------

OPTION_CASES = [
    (dict(precision=2), "torch.tensor([0.123456, 1.5])"),
    (dict(precision=0), "torch.tensor([0.123456, 1.5, -2.5])"),
    (dict(precision=0), "torch.tensor([1e-5, 1.])"),
    (dict(precision=8), f"torch.tensor([math.pi, -math.e], {F64})"),
    (dict(sci_mode=True), "torch.tensor([1., 2.])"),
    (dict(sci_mode=True), "torch.tensor([float('nan'), 2.5])"),
    (dict(sci_mode=True), "torch.arange(5)"),
    (dict(sci_mode=False), "torch.tensor([1e-8, 1e8])"),
    (dict(sci_mode=False), "torch.tensor([1e20])"),
    (dict(sci_mode=False), f"torch.tensor([1e300, 1.5], {F64})"),
    (dict(threshold=5), "torch.arange(10)"),
    (dict(threshold=5), "torch.arange(24.).reshape(2, 3, 4)"),
    (dict(threshold=5, edgeitems=1), "torch.arange(24.).reshape(2, 3, 4)"),
    (dict(threshold=5, edgeitems=1), "torch.arange(60.).reshape(3, 4, 5) / 7"),
    (dict(threshold=5, edgeitems=0), "torch.arange(10)"),
    (dict(threshold=5, edgeitems=0), "torch.arange(24.).reshape(2, 3, 4)"),
    (dict(threshold=5, edgeitems=0), f"torch.arange(10., {F64}, requires_grad=True)"),
    (dict(edgeitems=0), "torch.arange(3)"),
    (dict(edgeitems=0), "torch.zeros(0, 3)"),
    (dict(linewidth=40), "torch.arange(30.) / 3"),
    (dict(linewidth=40), f"torch.arange(12., {F64}, requires_grad=True).reshape(2, 6) * 1"),
    (dict(linewidth=200), "torch.arange(60.).reshape(2, 30)"),
    (dict(linewidth=10), "torch.arange(5.) / 3"),
    (dict(profile="short"), "torch.arange(2000.).reshape(40, 50) / 3"),
    (dict(profile="full"), "torch.arange(2000)"),
    (dict(profile="full", precision=2), "torch.arange(1200.).reshape(2, 600) / 7"),
]


@pytest.mark.parametrize("opts,expr", OPTION_CASES, ids=[f"opt{i}" for i in range(len(OPTION_CASES))])
def test_printoptions(torch, opts, expr):
    set_both(torch, **opts)
    check(torch, eval(expr, {"torch": torch, "math": math}))


def test_get_printoptions_matches_torch(torch):
    calls = [
        dict(), dict(precision=2), dict(threshold=5, sci_mode=True), dict(profile="short"),
        dict(profile="full", edgeitems=1), dict(linewidth=120), dict(profile="default"),
    ]
    for kw in calls:
        set_both(torch, **kw)
        assert TS.get_printoptions() == torch._tensor_str.get_printoptions()
    with TS.printoptions(precision=7), torch._tensor_str.printoptions(precision=7):
        assert TS.get_printoptions() == torch._tensor_str.get_printoptions()
    assert TS.get_printoptions() == torch._tensor_str.get_printoptions()


# ---------------------------------------------------------------------------
# random arrays against torch
# ---------------------------------------------------------------------------

_DTYPES = ["float32", "float64", "int64", "int32", "bool"]
_RANDOM_OPTS = [
    dict(precision=2), dict(sci_mode=True), dict(sci_mode=False), dict(threshold=10),
    dict(edgeitems=1, threshold=20), dict(edgeitems=0, threshold=5), dict(linewidth=40),
    dict(linewidth=120), dict(profile="short"), dict(precision=0), dict(precision=7),
]


def _random_case(seed):
    rng = np.random.default_rng(seed)
    dtype = _DTYPES[rng.integers(len(_DTYPES))]
    shape = []
    for _ in range(int(rng.integers(0, 5))):
        r = rng.random()
        if r < 0.1:
            shape.append(int(rng.integers(0, 2)))
        elif r < 0.85:
            shape.append(int(rng.integers(1, 7)))
        else:
            shape.append(int(rng.integers(7, 45)))
    shape = tuple(shape)
    if int(np.prod(shape)) > 20000:
        shape = shape[:2]

    if dtype == "bool":
        values = rng.random(shape) < 0.5
    elif dtype.startswith("int"):
        info = np.iinfo(dtype)
        mag = int(10 ** rng.uniform(0, math.log10(info.max)))
        low = -mag if rng.random() < 0.7 else 0
        values = rng.integers(low, mag, size=shape, endpoint=True)
        if rng.random() < 0.05:
            values = np.full(shape, info.min)
    else:
        lo, hi = (-40, 38) if dtype == "float32" else (-310, 307)
        centre = rng.uniform(lo, hi) if rng.random() < 0.5 else rng.uniform(-6, 9)
        spread = float(rng.choice([0, 1, 3, 6, 20]))
        exps = np.clip(rng.uniform(centre - spread, centre + spread, size=shape), lo, hi)
        values = rng.standard_normal(shape) * 10.0 ** exps
        kind = rng.random()
        if kind < 0.25:
            values = np.round(values)
        elif kind < 0.35:
            values = np.round(rng.standard_normal(shape) * 10 ** rng.integers(0, 4),
                              int(rng.integers(0, 4)))
        if rng.random() < 0.3:
            m = rng.random(shape)
            p = rng.random() * 0.3
            values = np.where(m < p / 4, np.nan, values)
            values = np.where((m >= p / 4) & (m < p / 2), np.inf, values)
            values = np.where((m >= p / 2) & (m < 3 * p / 4), -np.inf, values)
            values = np.where((m >= 3 * p / 4) & (m < p), float(rng.choice([0.0, -0.0])), values)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.asarray(values).astype(dtype)

    grad = None
    if dtype.startswith("float"):
        grad = ["none", "none", "requires_grad", "grad_fn"][rng.integers(4)]
    opts = _RANDOM_OPTS[rng.integers(len(_RANDOM_OPTS))] if rng.random() < 0.3 else {}
    return values, dtype, grad, opts


@pytest.mark.parametrize("seed", range(400))
def test_random(torch, seed):
    values, dtype, grad, opts = _random_case(seed)
    set_both(torch, **opts)
    t = torch.from_numpy(values.copy())
    if grad == "requires_grad":
        t.requires_grad_(True)
    elif grad == "grad_fn":
        t = t.requires_grad_(True) * 1
    check(torch, t)
