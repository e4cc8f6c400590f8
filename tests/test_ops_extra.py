"""sort / argsort / topk, tril / triu, roll, F.one_hot, the activations of
``nn/activations.py``, ``jitgrad.pi`` & co., ``get/set_num_threads`` and
``Tensor.multinomial``: values, gradients, grad_fn names and errors against PyTorch, and
``gradcheck`` (which needs no PyTorch). Run in either mode (the suite's pass decides);
the tests on pending inputs switch to lazy mode themselves."""
import math

import numpy as np
import pytest

import jitgrad as jg
import jitgrad.nn.functional as F
from jitgrad.autograd import gradcheck, gradgradcheck

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the comparisons skip; gradcheck and the rest still run
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the reference")

DTYPES = [("float32", 1e-6), ("float64", 1e-12)]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _pair(a, requires_grad=True):
    """The same array as a jitgrad and a torch tensor (leaves)."""
    x = jg.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    t = torch.tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    return x, t


def _close(a, b, tol=1e-6):
    a = a.detach().numpy() if isinstance(a, jg.Tensor) else np.asarray(a)
    b = b.detach().numpy() if torch is not None and isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


def _backward_both(jy, ty, seed=1):
    """Backpropagate the same random upstream gradient through both outputs."""
    g = _rng(seed).standard_normal(tuple(jy.shape)).astype(jy.detach().numpy().dtype)
    (jy * jg.tensor(g)).sum().backward()
    (ty * torch.tensor(g)).sum().backward()


def _shapes_dims():
    return [((6,), 0), ((6,), -1), ((3, 5), 0), ((3, 5), 1), ((3, 5), -2),
            ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4), 0)]


# --- sort / argsort ----------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("shape,dim", _shapes_dims())
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_sort_matches_torch(dtype, tol, shape, dim, descending, ties):
    r = _rng(len(shape) * 10 + dim)
    a = (r.integers(0, 3, shape) if ties else r.standard_normal(shape)).astype(dtype)
    x, t = _pair(a)
    jv, ji = jg.sort(x, dim=dim, descending=descending, stable=True)
    tv, ti = torch.sort(t, dim=dim, descending=descending, stable=True)
    _close(jv, tv, tol)
    np.testing.assert_array_equal(ji.numpy(), ti.numpy())  # stable: ties in their order
    assert ji.dtype is jg.int64
    assert type(jv.grad_fn).__name__ == type(tv.grad_fn).__name__ == "SortBackward1"
    _backward_both(jv, tv)
    _close(x.grad, t.grad, tol)


@needs_torch
def test_sort_method_defaults_nan_and_names():
    a = np.array([[3.0, np.nan, 1.0, np.nan, 2.0, 1.0], [0.0, -1.0, 5.0, 5.0, 0.0, 2.0]],
                 np.float32)
    x, t = _pair(a)
    for desc in (False, True):
        jv, ji = x.sort(descending=desc)
        tv, ti = t.sort(stable=True, descending=desc)
        _close(jv, tv)
        np.testing.assert_array_equal(ji.numpy(), ti.numpy())
    out = x.sort(0, True)
    assert type(out.values.grad_fn).__name__ == type(t.sort(0, True).values.grad_fn).__name__
    assert type(out.values.grad_fn).__name__ == "SortBackward0"
    assert repr(out).startswith("jitgrad.return_types.sort(\nvalues=tensor(")
    values, indices = out  # a named pair, as PyTorch's
    assert values is out.values and indices is out.indices and out[1] is indices


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int32", "bool"])
@pytest.mark.parametrize("descending", [False, True])
def test_argsort_matches_torch(dtype, descending):
    a = _rng(3).integers(0, 4, (4, 7)).astype(dtype)
    x, t = _pair(a, requires_grad=False)
    for dim in (0, 1, -1):
        got = jg.argsort(x, dim, descending)
        np.testing.assert_array_equal(
            got.numpy(), torch.argsort(t, dim=dim, descending=descending, stable=True).numpy())
        np.testing.assert_array_equal(x.argsort(dim=dim, descending=descending).numpy(),
                                      got.numpy())
        assert got.grad_fn is None and got.dtype is jg.int64
    v, i = jg.sort(x, descending=descending)
    np.testing.assert_array_equal(v.numpy(), torch.sort(t, descending=descending,
                                                        stable=True).values.numpy())
    assert v.dtype is x.dtype


def test_sort_empty_and_zero_dim():
    v, i = jg.sort(jg.zeros(0, 3), dim=0)
    assert v.shape == (0, 3) and i.shape == (0, 3) and i.dtype is jg.int64
    s = jg.tensor(3.0, requires_grad=True)
    v, i = jg.sort(s)
    assert v.shape == () and i.shape == () and v.item() == 3.0 and i.item() == 0
    v.backward()
    assert s.grad.item() == 1.0
    assert jg.argsort(jg.tensor(2.0)).shape == ()


@pytest.mark.parametrize("fn,got", [(lambda x: jg.sort(x, dim=5), 5),
                                    (lambda x: jg.argsort(x, 5), 5),
                                    (lambda x: jg.topk(x, 1, dim=5), 5),
                                    (lambda x: x.sort(-3), -3), (lambda x: x.topk(1, -3), -3),
                                    (lambda x: jg.roll(x, 1, 5), 5),
                                    (lambda x: jg.roll(x, (1, 1), (0, 5)), 5)])
def test_bad_dim(fn, got):
    with pytest.raises(IndexError) as e:
        fn(jg.randn(2, 3))
    assert str(e.value) == ("Dimension out of range (expected to be in range of [-2, 1], but "
                            f"got {got})")


# --- topk --------------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("shape,dim", _shapes_dims())
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_torch(dtype, tol, shape, dim, largest):
    a = _rng(len(shape) + dim + 7).permutation(np.prod(shape)).reshape(shape)
    a = (a / 7.0 - 1.3).astype(dtype)  # distinct values: the indices are determined
    n = shape[dim]
    for k in sorted({0, 1, n // 2, n}):
        x, t = _pair(a)
        jv, ji = jg.topk(x, k, dim=dim, largest=largest)
        tv, ti = torch.topk(t, k, dim=dim, largest=largest)
        _close(jv, tv, tol)
        np.testing.assert_array_equal(ji.numpy(), ti.numpy())
        assert type(jv.grad_fn).__name__ == type(tv.grad_fn).__name__ == "TopkBackward0"
        if k:
            _backward_both(jv, tv)
            _close(x.grad, t.grad, tol)


@needs_torch
def test_topk_ties_nan_method_and_unsorted():
    a = np.array([[1.0, 1, 0, 1, 0, 0], [3, np.nan, 1, np.nan, 2, 2]], np.float32)
    x, t = _pair(a)
    for largest in (True, False):
        for k in (1, 2, 3, 4):
            jv, ji = x.topk(k, largest=largest)
            tv, _ = t.topk(k, largest=largest)
            _close(jv, tv)  # PyTorch may pick other ones among equal values: same values
            picked = np.take_along_axis(a, ji.numpy(), 1)
            np.testing.assert_array_equal(picked, jv.detach().numpy())
            assert all(len(set(row)) == k for row in ji.numpy().tolist())  # distinct
    # the gradient goes to the positions the indices name
    jv, ji = jg.topk(x, 2, 1, True, False)
    jv.backward(jg.ones_like(jv))
    want = np.zeros_like(a)
    np.put_along_axis(want, ji.numpy(), 1.0, 1)
    np.testing.assert_array_equal(x.grad.numpy(), want)
    out = jg.topk(x, 2)
    assert repr(out).startswith("jitgrad.return_types.topk(\nvalues=tensor(")
    assert out.values is out[0] and out.indices is out[1]


def test_topk_empty_zero_dim_and_errors():
    assert jg.topk(jg.zeros(0, 3), 2).values.shape == (0, 2)
    v, i = jg.topk(jg.randn(3, 4), 0)
    assert v.shape == (3, 0) and i.shape == (3, 0)
    s = jg.tensor(3.0)
    for k in (0, 1):
        v, i = jg.topk(s, k)
        assert v.shape == () and v.item() == 3.0 and i.item() == 0
    for bad in [lambda: jg.topk(jg.randn(2, 3), 4), lambda: jg.topk(jg.randn(2, 3), -1),
                lambda: jg.topk(jg.zeros(0, 3), 2, dim=0), lambda: jg.topk(s, 2),
                lambda: jg.topk(jg.randn(2, 3), 3, dim=0)]:
        with pytest.raises(RuntimeError, match="^selected index k out of range$"):
            bad()
    with pytest.raises(RuntimeError, match="topk does not support bool dtypes on CPU"):
        jg.topk(jg.tensor([True, False]), 1)
    with pytest.raises(TypeError, match="argument 'k'"):
        jg.topk(jg.randn(3), 1.5)


def test_sort_topk_gradcheck():
    r = _rng(5)
    a = jg.tensor(r.permutation(24).reshape(2, 3, 4) / 5.0, dtype=jg.float64,
                  requires_grad=True)
    assert gradcheck(lambda x: jg.sort(x, 1, True).values, (a,))
    assert gradcheck(lambda x: jg.topk(x, 2, dim=-1, largest=False).values, (a,))
    assert gradgradcheck(lambda x: jg.topk(x, 2, dim=0).values ** 2, (a,))
    assert gradgradcheck(lambda x: jg.sort(x, 0).values ** 2, (a,))


def test_sort_topk_of_pending_values():
    """Lazy mode: the input is a recorded result; its values are computed for the order."""
    for mode in ("lazy", "eager"):
        jg.set_mode(mode)
        w = jg.tensor([[0.5, -2.0, 3.0], [1.0, 4.0, -1.0]], requires_grad=True)
        y = w * 2 + 1
        v, i = jg.topk(y, 2, dim=1)
        s = jg.sort(y, dim=0, descending=True).values
        (v.sum() + (s * jg.tensor([[1.0], [10.0]])).sum()).backward()
        np.testing.assert_array_equal(v.detach().numpy(), [[7.0, 2.0], [9.0, 3.0]])
        np.testing.assert_array_equal(i.numpy(), [[2, 0], [1, 0]])
        np.testing.assert_array_equal(w.grad.numpy(), [[2 + 20, 20, 2 + 2], [2 + 2, 2 + 2, 20]])


def _sort_step_losses(mode, use_jit):
    """A training step through topk, sort, roll and triu, over new data each step (the
    order changes): its losses in ``mode``, under ``jg.jit`` when asked."""
    jg.set_mode(mode)
    r = _rng(11)
    w = jg.zeros(4, 6, requires_grad=True)
    opt = jg.optim.SGD([w], lr=0.1)
    x = jg.zeros(4, 6)

    def step():
        opt.zero_grad()
        y = x * 2 + w
        loss = ((jg.topk(y, 2, dim=1).values * jg.arange(2.0)).sum()
                + jg.sort(y, 0, descending=True).values[0].sum()
                + (jg.roll(y, 1, 1) * jg.triu(y)).sum())
        loss.backward()
        opt.step()
        return loss.item()
    if use_jit:
        step = jg.jit(step)
    losses = []
    for _ in range(6):
        with jg.no_grad():
            x.copy_(jg.tensor(r.standard_normal((4, 6)).astype(np.float32)))
        losses.append(step())
    return losses, w.detach().numpy().copy()


def test_sort_in_cached_and_jitted_steps():
    """Lazy mode caches the step's Program and jg.jit watches it: the positions, which
    change with the data, must be the current ones every step (jit must not replay)."""
    want, w_want = _sort_step_losses("eager", False)
    for use_jit in (False, True):
        got, w_got = _sort_step_losses("lazy", use_jit)
        np.testing.assert_allclose(got, want, rtol=1e-5)
        np.testing.assert_allclose(w_got, w_want, rtol=1e-5, atol=1e-6)


@needs_torch
def test_non_contiguous_and_pending_inputs():
    """Transposed, strided and expanded inputs (pending views in lazy mode)."""
    a = _rng(12).standard_normal((4, 5)).astype(np.float32)
    x, t = _pair(a)
    outs = []
    for m, lib in ((jg, x), (torch, t)):
        y = (lib * 1).t()[1:, ::2]
        e = (lib[0] * 1).expand(3, 5)
        outs.append(m.topk(y, 2, 0).values.sum() + (m.sort(e, 1, True).values
                                                    * m.arange(5.0)).sum()
                    + (m.tril((lib * 1).t()) ** 2).sum()
                    + (m.roll((lib * 1).t()[::2], 2, 1) * m.arange(4.0)).sum())
    _close(outs[0], outs[1], 1e-5)
    outs[0].backward()
    outs[1].backward()
    _close(x.grad, t.grad, 1e-6)


# --- tril / triu ---------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("dtype,tol", DTYPES + [("int64", 0), ("bool", 0)])
@pytest.mark.parametrize("shape", [(3, 4), (4, 2), (2, 3, 4), (0, 3), (3, 3)])
@pytest.mark.parametrize("diagonal", [-5, -1, 0, 1, 2])
def test_tril_triu_match_torch(dtype, tol, shape, diagonal):
    a = (_rng(2).standard_normal(shape) * 3).astype(dtype)
    for name in ("tril", "triu"):
        x, t = _pair(a)
        jy, ty = getattr(jg, name)(x, diagonal), getattr(torch, name)(t, diagonal)
        _close(jy, ty, tol)
        assert jy.dtype is x.dtype
        _close(getattr(x, name)(diagonal=diagonal), ty, tol)
        if dtype.startswith("float"):
            assert type(jy.grad_fn).__name__ == type(ty.grad_fn).__name__
            _backward_both(jy, ty)
            _close(x.grad, t.grad, tol)


@needs_torch
def test_tril_triu_in_place():
    a = _rng(4).standard_normal((3, 4)).astype(np.float32)
    for name in ("tril_", "triu_"):
        x, t = _pair(a)
        jy, ty = x * 1, t * 1
        assert getattr(jy, name)(1) is jy
        getattr(ty, name)(1)
        _close(jy, ty)
        assert type(jy.grad_fn).__name__ == type(ty.grad_fn).__name__
        _backward_both(jy, ty)
        _close(x.grad, t.grad)
        with jg.no_grad():
            z = jg.tensor(a)
            getattr(z, name)(-1)
        _close(z, getattr(torch.tensor(a), name)(-1))
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        jg.ones(2, 2, requires_grad=True).tril_()


def test_tril_triu_errors_and_gradcheck():
    for fn in (jg.tril, jg.triu):
        with pytest.raises(RuntimeError, match=f"^{fn.__name__}: input tensor must have at "
                                               "least 2 dimensions$"):
            fn(jg.tensor([1.0, 2.0]))
    a = jg.randn(2, 3, 3, dtype=jg.float64, requires_grad=True)
    assert gradcheck(lambda x: jg.tril(x, -1) + jg.triu(x, 1) * 2, (a,))
    np.testing.assert_array_equal(jg.tril(jg.ones(2, 3)).numpy(), [[1, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(jg.triu(jg.ones(2, 3), 1).numpy(), [[0, 1, 1], [0, 0, 1]])


# --- roll ----------------------------------------------------------------------------------

ROLLS = [(1, None), (-4, None), (13, None), (1, 0), (-1, -1), (2, 1), ((1, 2), (0, 1)),
         ((5, -3), (-1, 0)), ((1, 1), (1, 1)), (0, 0), (3, (2,)), ((2,), None)]


@needs_torch
@pytest.mark.parametrize("dtype,tol", DTYPES + [("int64", 0)])
@pytest.mark.parametrize("shifts,dims", ROLLS)
def test_roll_matches_torch(dtype, tol, shifts, dims):
    a = (_rng(6).standard_normal((3, 4, 5)) * 4).astype(dtype)
    x, t = _pair(a)
    jy, ty = jg.roll(x, shifts, dims), torch.roll(t, shifts, dims)
    _close(jy, ty, tol)
    _close(x.roll(shifts, dims), ty, tol)
    if dtype.startswith("float"):
        if jy.grad_fn is not None and "Roll" in type(jy.grad_fn).__name__:
            assert type(jy.grad_fn).__name__ == type(ty.grad_fn).__name__
        _backward_both(jy, ty)
        _close(x.grad, t.grad, tol)


def test_roll_edges_and_errors():
    x = jg.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(jg.roll(x, 1).numpy(), [[5, 0, 1], [2, 3, 4]])
    np.testing.assert_array_equal(jg.roll(x, 1, ()).numpy(), [[5, 0, 1], [2, 3, 4]])
    assert jg.roll(jg.zeros(0, 3), 2, 0).shape == (0, 3)
    assert jg.roll(jg.tensor(2.0), 3).item() == 2.0
    y = jg.roll(x, 0, 1)
    assert y is not x and np.array_equal(y.numpy(), x.numpy())
    with pytest.raises(RuntimeError, match=r"^shifts and dimensions must align\. shifts: 2, "
                                           r"dims:1$"):
        jg.roll(x, (1, 2), 0)
    with pytest.raises(RuntimeError, match="^`shifts` required$"):
        jg.roll(x, ())
    a = jg.randn(3, 4, dtype=jg.float64, requires_grad=True)
    assert gradcheck(lambda v: jg.roll(v, (1, -1), (0, 1)) * jg.arange(12.0).reshape(3, 4),
                     (a,))


# --- one_hot -------------------------------------------------------------------------------

@needs_torch
@pytest.mark.parametrize("values,num_classes", [([0, 2, 1], -1), ([[1, 0], [3, 3]], 5),
                                                ([], 3), (2, 4), ([[0]], -1)])
def test_one_hot_matches_torch(values, num_classes):
    got = F.one_hot(jg.tensor(values, dtype=jg.int64), num_classes)
    want = TF.one_hot(torch.tensor(values, dtype=torch.int64), num_classes)
    assert got.dtype is jg.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.shape == tuple(want.shape)


def test_one_hot_errors():
    for values, n, msg in [([1.0, 2.0], -1, "one_hot is only applicable to index tensor of "
                                            "type LongTensor."),
                           ([1, -2], -1, "Class values must be non-negative."),
                           ([1, 4], 3, "Class values must be smaller than num_classes."),
                           ([1, 2], 0, "Class values must be smaller than num_classes."),
                           ([], -1, "Can not infer total number of classes from empty "
                                    "tensor.")]:
        dtype = jg.float32 if values and isinstance(values[0], float) else jg.int64
        with pytest.raises(RuntimeError) as e:
            F.one_hot(jg.tensor(values, dtype=dtype), n)
        assert str(e.value) == msg
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(jg.tensor([1, 2], dtype=jg.int32), 3)
    np.testing.assert_array_equal(F.one_hot(jg.tensor([2, 0]), 3).numpy(),
                                  [[0, 0, 1], [1, 0, 0]])


# --- activations ---------------------------------------------------------------------------

ACTIVATIONS = [
    ("leaky_relu", {}, "LeakyReluBackward0"),
    ("leaky_relu", {"negative_slope": 0.2}, "LeakyReluBackward0"),
    ("elu", {}, "EluBackward0"),
    ("elu", {"alpha": 0.5}, "EluBackward0"),
    ("silu", {}, "SiluBackward0"),
    ("softplus", {}, "SoftplusBackward0"),
    ("softplus", {"beta": 2.0, "threshold": 3.0}, "SoftplusBackward0"),
    ("softplus", {"beta": 0.5, "threshold": 1.0}, "SoftplusBackward0"),
    ("hardtanh", {}, "HardtanhBackward0"),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, "HardtanhBackward0"),
    ("relu6", {}, "HardtanhBackward0"),
    ("gelu", {}, None),
    ("gelu", {"approximate": "tanh"}, None),
]


def _activation_input(dtype):
    # kinks and bounds exactly (0, ±1, ±0.5, 2, 6), both sides of softplus' thresholds,
    # large values (overflow) and random ones
    special = [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 6.0, 7.0, -30.0, 30.0, 1.5, 3.0, 100.0, -100.0]
    return np.concatenate([special, _rng(8).standard_normal(22) * 4]).astype(dtype)


@needs_torch
@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("name,kwargs,node", ACTIVATIONS)
def test_activations_match_torch(dtype, tol, name, kwargs, node):
    a = _activation_input(dtype).reshape(4, 9)
    x, t = _pair(a)
    jy, ty = getattr(F, name)(x, **kwargs), getattr(TF, name)(t, **kwargs)
    _close(jy, ty, tol)
    if node is not None:
        assert type(jy.grad_fn).__name__ == type(ty.grad_fn).__name__ == node
    _backward_both(jy, ty)
    _close(x.grad, t.grad, tol)


@needs_torch
@pytest.mark.parametrize("name,kwargs", [("leaky_relu", {"negative_slope": 0.1}),
                                         ("elu", {}), ("silu", {}), ("hardtanh", {}),
                                         ("relu6", {})])
def test_activations_in_place(name, kwargs):
    a = _activation_input("float32")
    x, t = _pair(a)
    jy, ty = x * 2, t * 2
    out = getattr(F, name)(jy, inplace=True, **kwargs)
    getattr(TF, name)(ty, inplace=True, **kwargs)
    assert out is jy
    _close(jy, ty)
    _backward_both(jy, ty)
    _close(x.grad, t.grad)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        getattr(F, name)(jg.ones(3, requires_grad=True), inplace=True)


@needs_torch
@pytest.mark.parametrize("module,args", [("LeakyReLU", (0.3,)), ("ELU", (0.7,)), ("SiLU", ())])
def test_activation_modules_use_the_functions(module, args):
    a = _activation_input("float64")
    x, t = _pair(a)
    jy, ty = getattr(jg.nn, module)(*args)(x), getattr(torch.nn, module)(*args)(t)
    _close(jy, ty, 1e-12)
    assert type(jy.grad_fn).__name__ == type(ty.grad_fn).__name__
    _backward_both(jy, ty)
    _close(x.grad, t.grad, 1e-12)


def test_activations_gradcheck_and_errors():
    # away from the kinks, where finite differences hold
    a = jg.tensor([-3.0, -1.7, -0.3, 0.4, 0.9, 1.6, 2.4, 5.3, 6.8], dtype=jg.float64,
                  requires_grad=True)
    for fn in (lambda x: F.leaky_relu(x, 0.1), lambda x: F.elu(x, 1.3), F.silu,
               lambda x: F.softplus(x, 2.0, 3.0), F.softplus,
               lambda x: F.hardtanh(x, -2.0, 2.0), F.relu6):
        assert gradcheck(fn, (a,))
        assert gradgradcheck(fn, (a,))
    with pytest.raises(ValueError, match="^min_val cannot be greater than max_val$"):
        F.hardtanh(a, 2.0, 1.0)
    # softplus overflows nowhere, and its gradient is sigmoid(beta x) up to the threshold
    x = jg.tensor([-1000.0, 0.0, 10.0, 1000.0], requires_grad=True)
    y = F.softplus(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [0.0, math.log(2), 10.0 + math.log1p(
        math.exp(-10)), 1000.0], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 1 / (1 + math.exp(-10)), 1.0],
                               rtol=1e-6)


# --- constants, threads, multinomial -------------------------------------------------------

def test_constants():
    assert jg.pi == math.pi and jg.e == math.e and jg.inf == math.inf
    assert math.isnan(jg.nan)
    if torch is not None:
        assert (jg.pi, jg.e, jg.inf) == (torch.pi, torch.e, torch.inf)


def test_num_threads():
    before = jg.get_num_threads()
    assert isinstance(before, int) and before >= 1
    try:
        jg.set_num_threads(1)
        assert jg.get_num_threads() == 1
        a = jg.randn(40, 40)
        np.testing.assert_allclose((a @ a).numpy(), a.numpy() @ a.numpy(), rtol=1e-4,
                                   atol=1e-4)
    finally:
        jg.set_num_threads(before)
    assert jg.get_num_threads() == before
    for bad, msg in [(0, "set_num_threads expects a positive integer"),
                     (-2, "set_num_threads expects a positive integer"),
                     (1.5, "set_num_threads expects an int, but got float")]:
        with pytest.raises(RuntimeError) as e:
            jg.set_num_threads(bad)
        assert str(e.value) == msg
    assert jg.get_num_threads() == before


def test_tensor_multinomial_method():
    p = jg.tensor([[0.1, 0.0, 0.9, 0.5], [1.0, 1.0, 0.0, 0.0]])
    g1, g2 = jg.Generator().manual_seed(3), jg.Generator().manual_seed(3)
    got = p.multinomial(3, generator=g1)
    want = jg.multinomial(p, 3, generator=g2)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.shape == (2, 3) and got.dtype is jg.int64
    assert set(got.numpy()[1].tolist()) <= {0, 1, 2, 3} and got.numpy()[0, 0] != 1
    draws = p.multinomial(8, replacement=True, generator=g1).numpy()
    assert draws.shape == (2, 8) and not (draws[0] == 1).any() and (draws[1] < 2).all()
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        p.multinomial(5)
