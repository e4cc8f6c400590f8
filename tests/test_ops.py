"""Registry-driven op tests, generated from the table in ``opinfo.py``.

For every entry and sample: forward values in float32 and float64 against the
float64 NumPy reference, with PyTorch's output dtype; float32 backward keeps
float32 gradients; ``gradcheck`` and ``gradgradcheck`` in float64; the table
covers every ``REGISTRY`` primitive; and, where torch is importable, values,
gradients, dtypes and ``grad_fn`` names match PyTorch's.

Cases that fail because jitgrad is wrong are listed in ``XFAIL`` (strict, so a
fix makes them fail until removed from the list).
"""
import warnings

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.ops import REGISTRY
from opinfo import OPS, as_outputs, make_args, ref_args

GRADCHECK_TOL = dict(eps=1e-6, atol=1e-5, rtol=1e-3)  # PyTorch's defaults

# (test, op name, sample name or "*") -> reason; tests: forward gradcheck gradgradcheck
# backward_float32 torch
XFAIL = {}


def _xfail(tests, op, samples, reason):
    for test in tests.split():
        for s in samples.split():
            XFAIL[(test, op, s)] = reason


_xfail("torch", "matmul", "3_3x2", "BUG: 1-D @ 2-D grad_fn SqueezeBackward1, torch "
       "SqueezeBackward4 (ops.py matmul `squeeze(mm(unsqueeze(input, 0), other), 0)`)")
_xfail("torch", "matmul", "3_2x3x2", "BUG: 1-D @ 3-D grad_fn SqueezeBackward1, torch "
       "UnsafeViewBackward0 (torch folds to mv of other.mT; ops.py matmul squeezes a bmm)")
_xfail("torch", "matmul", "1x2x3_2x3x1 2x3_2x3x2", "BUG: when only `other` has batch dims torch "
       "folds them (other.mT @ input.mT).mT: grad_fn TransposeBackward0 / CloneBackward0, "
       "jitgrad UnsafeViewBackward0 (ops.py matmul broadcast-bmm path)")
_xfail("torch", "setitem", "everything_broadcast", "BUG: y[...] = v grad_fn CopySlices, torch "
       "CopyBackwards (a whole-tensor copy_; ops.py setitem)")



def _cases(test, want):
    params = []
    for op in OPS:
        for s in op.samples:
            if not want(op, s):
                continue
            reason = _xfailed(test, op, s)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(op, s, id=f"{op.name}-{s.name}", marks=marks))
    return params


def _xfailed(test, op, s):
    return XFAIL.get((test, op.name, s.name)) or XFAIL.get((test, op.name, "*"))


def _has_float_arg(s):
    return any(a.dtype.kind == "f" for a in s.args)


def _grad_case(op, s):
    return op.differentiable and s.grad and _has_float_arg(s)


def _call(op, m, args, s):
    return as_outputs(op.op(m, *args, **s.kwargs))


def _values(t):
    return t.detach().numpy()


def _floats(args):
    return [a for a in args if a.dtype.is_floating_point]


def _upstream(outs, seed=0):
    """Random output gradients (float64 numpy) for the outputs that require grad."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(o.shape)) if o.requires_grad else None for o in outs]


def _backward(m, outs, grads):
    pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
    m.autograd.backward([o for o, _ in pairs],
                        [m.tensor(g, dtype=o.dtype) for o, g in pairs])


# --- forward ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,sample", _cases("forward", lambda op, s: True))
def test_forward(op, sample, dtype):
    args = make_args(jg, sample, dtype, requires_grad=True)
    before = [_values(a).copy() for a in args]
    outs = _call(op, jg, args, sample)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy on empty or special inputs
        expected = as_outputs(op.ref(*ref_args(sample, dtype), **sample.kwargs))
    assert len(outs) == len(expected)
    float_in = any(a.requires_grad for a in args)
    for k, (o, e, d) in enumerate(zip(outs, expected, op.out_dtypes(sample, dtype, len(outs)))):
        e = np.asarray(e)
        rtol, atol = op.tol32 if d == "float32" else op.tol64
        if d == "float32":  # overflow and underflow as float32 has them
            with np.errstate(all="ignore"):
                e = e.astype(np.float32).astype(np.float64)
        assert isinstance(o, jg.Tensor)
        assert o.dtype is getattr(jg, d), f"output {k}: dtype {o.dtype}, expected jitgrad.{d}"
        assert tuple(o.shape) == e.shape, f"output {k}: shape {tuple(o.shape)} != {e.shape}"
        if o.dtype.is_floating_point:
            np.testing.assert_allclose(_values(o).astype(np.float64), e, rtol=rtol, atol=atol,
                                       err_msg=f"output {k}")
        else:
            np.testing.assert_array_equal(_values(o), e, err_msg=f"output {k}")
        tracks = op.differentiable and float_in and o.dtype.is_floating_point
        assert o.requires_grad == tracks, f"output {k}: requires_grad {o.requires_grad}"
    for a, b in zip(args, before):  # ops never write to their inputs
        np.testing.assert_array_equal(_values(a), b)


# --- gradients ----------------------------------------------------------------------

@pytest.mark.parametrize("op,sample", _cases("gradcheck", _grad_case))
def test_gradcheck(op, sample):
    args = make_args(jg, sample, "float64", requires_grad=True)
    assert jg.autograd.gradcheck(lambda *a: _call(op, jg, a, sample), args, **GRADCHECK_TOL)


@pytest.mark.parametrize("op,sample", _cases("gradgradcheck",
                                             lambda op, s: op.gradgrad and _grad_case(op, s)))
def test_gradgradcheck(op, sample):
    args = make_args(jg, sample, "float64", requires_grad=True)
    assert jg.autograd.gradgradcheck(lambda *a: _call(op, jg, a, sample), args, **GRADCHECK_TOL)


@pytest.mark.parametrize("op,sample", _cases("backward_float32", _grad_case))
def test_backward_float32(op, sample):
    """float32 in, float32 gradients out, equal to the float64 ones to float32 accuracy."""
    grads = {}
    for dtype in ("float32", "float64"):
        args = make_args(jg, sample, dtype, requires_grad=True)
        outs = _call(op, jg, args, sample)
        _backward(jg, outs, _upstream(outs))
        for a in _floats(args):
            assert a.grad is not None
            assert a.grad.dtype is a.dtype, f"grad dtype {a.grad.dtype} for a {a.dtype} input"
            assert a.grad.shape == a.shape
        grads[dtype] = [_values(a.grad).astype(np.float64) for a in _floats(args)]
    for g32, g64 in zip(grads["float32"], grads["float64"]):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_gradcheck_can_fail(monkeypatch):
    """The gradient tests would notice a wrong VJP rule."""
    monkeypatch.setattr(REGISTRY["sin"], "vjp", lambda c, g: (g * jg.sin(c.saved(0)),))
    x = jg.tensor([0.3, -1.2], dtype=jg.float64, requires_grad=True)
    with pytest.raises(jg.autograd.GradcheckError):
        jg.autograd.gradcheck(jg.sin, (x,), **GRADCHECK_TOL)


# --- registry coverage ---------------------------------------------------------------

def test_every_primitive_has_an_entry():
    declared = set().union(*(op.prims + op.lazy_prims for op in OPS))
    missing = sorted(set(REGISTRY) - declared)
    stale = sorted(declared - set(REGISTRY))
    assert not missing, f"REGISTRY primitives no OpInfo exercises: {missing}"
    assert not stale, f"OpInfo prims not in REGISTRY: {stale}"


@pytest.fixture
def eager_mode():
    """Eager mode, where every op runs through its ``Op.forward``."""
    mode = jg.get_mode() if hasattr(jg, "get_mode") else "eager"
    if mode != "eager":
        jg.set_mode("eager")
    yield
    if mode != "eager":
        jg.set_mode(mode)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_declared_primitives_run(op, monkeypatch, eager_mode):
    """Each entry's ``prims`` really run in its forward or first backward pass."""
    seen = set()
    for name, prim in REGISTRY.items():
        def traced(*a, _f=prim.forward, _n=name, **kw):
            seen.add(_n)
            return _f(*a, **kw)
        monkeypatch.setattr(prim, "forward", traced)
    for s in op.samples:
        for dtype in ("float32", "float64"):
            args = make_args(jg, s, dtype, requires_grad=op.differentiable)
            outs = _call(op, jg, args, s)
            if _grad_case(op, s) and not _xfailed("backward_float32", op, s):
                _backward(jg, outs, _upstream(outs))
    assert not set(op.prims) - seen, f"declared but never run: {sorted(set(op.prims) - seen)}"


# --- PyTorch parity ------------------------------------------------------------------

def _grad_fn_name(t):
    return type(t.grad_fn).__name__


@pytest.mark.parametrize("op,sample", _cases("torch", lambda op, s: True))
def test_torch_parity(op, sample):
    torch = pytest.importorskip("torch")
    for dtype in ("float32", "float64"):
        rg = op.differentiable and dtype == "float64"
        ja = make_args(jg, sample, dtype, requires_grad=rg)
        ta = make_args(torch, sample, dtype, requires_grad=rg)
        jo, to = _call(op, jg, ja, sample), _call(op, torch, ta, sample)
        assert len(jo) == len(to)
        for k, (j, t) in enumerate(zip(jo, to)):
            rtol, atol = op.tol32 if t.dtype == torch.float32 else (1e-10, 1e-12)
            assert str(j.dtype).split(".")[-1] == str(t.dtype).split(".")[-1], f"output {k}"
            assert tuple(j.shape) == tuple(t.shape), f"output {k}"
            np.testing.assert_allclose(_values(j), t.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"output {k}")
            assert j.requires_grad == t.requires_grad, f"output {k}: requires_grad"
            if op.torch_grad_fn:
                assert _grad_fn_name(j) == _grad_fn_name(t), f"output {k}: grad_fn"
        if not rg or not any(t.requires_grad for t in to):
            continue
        grads = _upstream(to, seed=1)
        _backward(jg, jo, grads)
        _backward(torch, to, grads)
        for i, (j, t) in enumerate(zip(_floats(ja), [a for a in ta if a.is_floating_point()])):
            assert (j.grad is None) == (t.grad is None), f"input {i}"
            if t.grad is not None:
                np.testing.assert_allclose(_values(j.grad), t.grad.numpy(), rtol=1e-10,
                                           atol=1e-12, err_msg=f"grad of input {i}")


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 200, 1000])
def test_row_maxima_and_minima_propagate_nan_wherever_it_is(n):
    """Max and min over contiguous rows run 64 lanes at once, merged at the end: a row's
    extreme and its NaN must come out whatever lane or tail holds them."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((6, n)).astype(np.float32)
    x[1, n - 1] = 50.0  # the last element (a tail, or the last lane)
    x[2, 0] = -50.0     # the first
    x[3, rng.integers(n)] = np.nan
    x[4, n // 2] = np.nan
    x[5, :] = 7.0
    for fn in ("amax", "amin"):
        got = getattr(jg, fn)(jg.from_numpy(x), 1).numpy()
        np.testing.assert_array_equal(got, getattr(np, fn)(x, 1))
    with np.errstate(invalid="ignore"):  # (numpy's own NaN rows)
        ref = np.logaddexp.reduce(x.astype(np.float64), 1)
    np.testing.assert_allclose(jg.logsumexp(jg.from_numpy(x), 1).numpy(), ref, rtol=1e-5)


def test_integer_reductions_are_exact_past_float64_precision():
    """Integer sums, products and extremes accumulate in int64 (in float64, 2**60 + 1
    would round to 2**60)."""
    a = np.array([[2**60 + 1, 1, -3], [3, 4, 2**40 + 7]], np.int64)
    t = jg.from_numpy(a)
    for dim in (0, 1):
        np.testing.assert_array_equal(t.sum(dim).numpy(), a.sum(dim))
        np.testing.assert_array_equal(t.prod(dim).numpy(), a.prod(dim))
        np.testing.assert_array_equal(t.max(dim).values.numpy(), a.max(dim))
        np.testing.assert_array_equal(t.min(dim).values.numpy(), a.min(dim))
    assert t.sum().item() == int(a.sum())


def test_elementwise_kernels_in_place_give_the_values_they_give_out_of_place():
    """A Program writes some results over an operand (mse squares its differences in
    place, a dead buffer is reused): the interpreter runs those through one array, so
    the loop vectorises; values must be those of the out-of-place loop."""
    from jitgrad.kernels.cpu import elementwise as ew
    rng = np.random.default_rng(5)
    x = rng.standard_normal(1000).astype(np.float32)
    y = rng.standard_normal(1000).astype(np.float32)
    for op in (ew.EXP, ew.TANH, ew.NEG, ew.SIGMOID, ew.RELU):
        want = np.empty_like(x)
        ew.unary(op, x, want)
        got = x.copy()
        ew.unary_in_place(op, got)
        np.testing.assert_array_equal(got, want)
    for op in (ew.ADD, ew.SUB, ew.MUL, ew.DIV, ew.TANH_BACKWARD):
        want = np.empty_like(x)
        ew.binary(op, x, y, want)
        over_a, over_b = x.copy(), y.copy()
        ew.binary_in_place(op, over_a, y, True)
        ew.binary_in_place(op, x, over_b, False)
        np.testing.assert_array_equal(over_a, want)
        np.testing.assert_array_equal(over_b, want)
    a, b = (jg.from_numpy(rng.standard_normal((64, 300)).astype(np.float32)) for _ in "ab")
    want = ((a.numpy().astype(np.float64) - b.numpy()) ** 2).mean()
    np.testing.assert_allclose(jg.nn.functional.mse_loss(a, b).item(), want, rtol=1e-5)
