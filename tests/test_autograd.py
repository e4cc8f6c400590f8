"""PyTorch's autograd semantics, checked against hand-computed values or float64 numpy.

Covers the seed document's model (``data``, ``requires_grad``, ``grad``,
``grad_fn``, ``is_leaf``, the three ways to get a leaf, ``backward()`` on
scalars and ``backward(v)`` as a vector-Jacobian product), grad modes, gradient
accumulation, the graph's ``grad_fn``/``next_functions`` structure, detach and
``.data``, version counters and in-place rules, hooks, ``autograd.grad`` with
higher order, error messages, and dynamic graphs. No torch needed.
"""
import math
import warnings

import numpy as np
import pytest

import jitgrad as jg


@pytest.fixture(autouse=True)
def _grad_mode_on():
    """Every test starts and ends with grad mode on (a failing test must not leak it)."""
    jg.set_grad_enabled(True)
    yield
    jg.set_grad_enabled(True)


def ver(t):
    """A tensor's version counter as an int (see test_version_is_an_int for the API form)."""
    v = t._version
    return int(v[0]) if isinstance(v, list) else int(v)


def arr(t):
    return np.array(t.detach().tolist(), dtype=np.float64)


def assert_close(t, expected, rtol=1e-6, atol=1e-6):
    assert t is not None
    np.testing.assert_allclose(arr(t), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


def no_warnings(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


def leaf_grad(t):
    """``t.grad`` of a leaf, which must not warn."""
    return no_warnings(lambda: t.grad)


# ---------------------------------------------------------------------------------------
# the seed's model: leaves, requires_grad, grad, grad_fn
# ---------------------------------------------------------------------------------------

def test_seed_leaf_case_1_explicitly_created():
    x = jg.tensor(1.0)
    r = jg.randn(1, 1)
    w = jg.tensor(1.0, requires_grad=True)
    for t in (x, r, w):
        assert t.is_leaf and t.grad_fn is None
        assert leaf_grad(t) is None
    assert not x.requires_grad and not r.requires_grad and w.requires_grad


def test_seed_leaf_case_2_ops_on_tensors_without_requires_grad():
    a = jg.tensor([1.0, 2.0])
    b = jg.tensor([3.0, 4.0])
    for c in (a * b, a + 1, (a @ b), a.exp().sum(), a[0], a.reshape(2, 1)):
        assert c.is_leaf and c.grad_fn is None and not c.requires_grad


def test_seed_leaf_case_3_detach():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3).exp()
    d = y.detach()
    assert not y.is_leaf
    assert d.is_leaf and d.grad_fn is None and not d.requires_grad
    assert_close(d, np.exp(3 * np.array([1.0, 2.0])), rtol=1e-6)


def test_seed_graph_members():
    x = jg.tensor(1.0, requires_grad=True)
    y = jg.tensor(2.0)
    z = x * y
    assert (x.requires_grad, y.requires_grad, z.requires_grad) == (True, False, True)
    assert (x.is_leaf, y.is_leaf, z.is_leaf) == (True, True, False)
    assert x.grad_fn is None and y.grad_fn is None
    assert type(z.grad_fn).__name__ == "MulBackward0" and z.grad_fn.name() == "MulBackward0"
    assert leaf_grad(x) is None and leaf_grad(y) is None
    assert z.item() == 2.0 and z.data.item() == 2.0
    assert not z.data.requires_grad and z.data.grad_fn is None
    # the seed prints the data of 0-d tensors with f-strings: PyTorch formats them as numbers
    assert f"{x.data}|{y.data}|{z.data}" == "1.0|2.0|2.0"


def test_seed_backward_x_cubed():
    x = jg.tensor(1.0, requires_grad=True)
    z = x ** 3
    z.backward()
    assert x.grad.item() == 3.0
    assert repr(x.grad.data) == "tensor(3.)"


def test_seed_vector_jacobian_product():
    x = jg.tensor([0.0, 2.0, 8.0], requires_grad=True)
    y = jg.tensor([5.0, 1.0, 7.0], requires_grad=True)
    z = x * y
    with pytest.raises(RuntimeError, match="^grad can be implicitly created only for scalar "
                                           "outputs$"):
        z.backward()
    assert leaf_grad(x) is None and leaf_grad(y) is None  # the failed call left no trace
    z.backward(jg.FloatTensor([1.0, 1.0, 1.0]))
    assert_close(x.grad, [5.0, 1.0, 7.0])
    assert_close(y.grad, [0.0, 2.0, 8.0])


def test_seed_no_grad():
    x = jg.tensor(1.0, requires_grad=True)
    assert x.requires_grad
    y = x * 2
    assert y.requires_grad
    with jg.no_grad():
        y = x * 2
        assert not y.requires_grad and y.grad_fn is None and y.is_leaf


# ---------------------------------------------------------------------------------------
# requires_grad propagation
# ---------------------------------------------------------------------------------------

def test_requires_grad_defaults_and_propagation():
    a = jg.tensor([1.0, 2.0])
    b = jg.tensor([3.0, 4.0], requires_grad=True)
    assert not a.requires_grad and not jg.zeros(2).requires_grad and not jg.ones(1).requires_grad
    assert (a * b).requires_grad and (b * a).requires_grad and (a + b).requires_grad
    assert (b * 2).requires_grad and (2 - b).requires_grad and (b ** 2).requires_grad
    assert not (a * a).requires_grad
    assert (jg.cat([a, b]).requires_grad and jg.stack([a, b]).requires_grad
            and jg.where(a > 1, a, b).requires_grad)
    assert not jg.where(b > 3, a, a).requires_grad  # the condition carries no gradient
    # comparisons and integer results never require grad
    for r in (b > 1, b == b, b.argmax(), b.max(0).indices):
        assert not r.requires_grad and r.grad_fn is None
    assert b.max(0).values.requires_grad


def test_requires_grad_setter_and_method():
    a = jg.tensor([1.0, 2.0])
    assert a.requires_grad_() is a and a.requires_grad and a.is_leaf
    a.requires_grad = False
    assert not a.requires_grad
    a.requires_grad = True
    y = a * 2
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables"):
        y.requires_grad = False
    y.requires_grad = True  # setting True on a non-leaf that requires grad is allowed


@pytest.mark.parametrize("make", [
    lambda: jg.tensor([1, 2], requires_grad=True),
    lambda: jg.tensor([True], requires_grad=True),
    lambda: jg.zeros(2, dtype=jg.int64, requires_grad=True),
    lambda: jg.arange(3, requires_grad=True),
], ids=["tensor-int", "tensor-bool", "zeros-int64", "arange-int"])
def test_int_tensor_cannot_require_grad_on_creation(make):
    with pytest.raises(RuntimeError) as e:
        make()
    assert str(e.value) == ("Only Tensors of floating point and complex dtype can require "
                            "gradients")


def test_int_tensor_cannot_require_grad_later():
    a = jg.tensor([1, 2])
    with pytest.raises(RuntimeError) as e:
        a.requires_grad_()
    assert str(e.value) == "only Tensors of floating point dtype can require gradients"
    with pytest.raises(RuntimeError):
        a.requires_grad = True
    assert not a.requires_grad


# ---------------------------------------------------------------------------------------
# grad modes
# ---------------------------------------------------------------------------------------

def test_no_grad_context_and_decorator():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    with jg.no_grad():
        assert not jg.is_grad_enabled()
        y = x * 2
    assert jg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @jg.no_grad()
    def f(t):
        assert not jg.is_grad_enabled()
        return t * 2

    assert not f(x).requires_grad
    assert jg.is_grad_enabled() and (x * 2).requires_grad
    assert f.__name__ == "f"


def test_enable_grad_inside_no_grad():
    x = jg.tensor([1.0], requires_grad=True)

    @jg.enable_grad()
    def g(t):
        return t * 2

    with jg.no_grad():
        with jg.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
        assert g(x).requires_grad
        assert not jg.is_grad_enabled()


def test_set_grad_enabled_as_function_and_context_manager():
    x = jg.tensor([1.0], requires_grad=True)
    jg.set_grad_enabled(False)
    assert not jg.is_grad_enabled() and not (x * 2).requires_grad
    jg.set_grad_enabled(True)
    assert jg.is_grad_enabled() and (x * 2).requires_grad
    with jg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with jg.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not jg.is_grad_enabled()
    assert jg.is_grad_enabled()
    with jg.no_grad():
        with jg.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not jg.is_grad_enabled()


def test_set_grad_enabled_as_decorator():
    x = jg.tensor([1.0], requires_grad=True)

    @jg.set_grad_enabled(False)
    def f(t):
        assert not jg.is_grad_enabled()
        return t * 2

    assert jg.is_grad_enabled(), "decorating must not change the grad mode"
    assert not f(x).requires_grad
    assert jg.is_grad_enabled() and (x * 2).requires_grad


def test_inference_mode():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    with jg.inference_mode():
        assert not jg.is_grad_enabled()
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    with jg.inference_mode(False):
        assert (x * 2).requires_grad

    @jg.inference_mode()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert jg.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with jg.no_grad():
            raise ValueError
    assert jg.is_grad_enabled()

    @jg.no_grad()
    def boom():
        raise KeyError

    with pytest.raises(KeyError):
        boom()
    assert jg.is_grad_enabled()


# ---------------------------------------------------------------------------------------
# gradients: accumulation, zeroing, only leaves
# ---------------------------------------------------------------------------------------

def test_grad_accumulates_over_two_backward_calls():
    x = jg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    g = x.grad
    assert_close(g, [2.0, -4.0, 6.0])
    (x * 3).sum().backward()  # a new graph
    assert_close(x.grad, [5.0, -1.0, 9.0])
    assert x.grad is g  # accumulated in place, as PyTorch does


def test_grad_accumulates_with_retain_graph():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = (x ** 2).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, [6.0, 12.0])


def test_grad_zero_and_set_to_none():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    (x * 5).sum().backward()
    g = x.grad
    v = ver(g)
    g.zero_()
    assert ver(g) == v + 1
    assert_close(x.grad, [0.0, 0.0])
    (x * 5).sum().backward()
    assert_close(x.grad, [5.0, 5.0])
    x.grad = None
    assert leaf_grad(x) is None
    (x * 2).sum().backward()
    assert_close(x.grad, [2.0, 2.0])
    assert x.grad is not g and arr(g).tolist() == [5.0, 5.0]


def test_grad_assignment_checks():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    x.grad = jg.tensor([10.0, 20.0])
    (x * 3).sum().backward()
    assert_close(x.grad, [13.0, 23.0])
    with pytest.raises(RuntimeError, match="attempting to assign a gradient of size"):
        x.grad = jg.zeros(3)
    assert_close(x.grad, [13.0, 23.0])


def test_only_leaves_get_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    c = jg.tensor([3.0, 4.0])  # a leaf that does not require grad
    y = x * c
    z = (y * y).sum()
    z.backward()
    assert_close(x.grad, 2 * np.array([3.0, 4.0]) ** 2 * np.array([1.0, 2.0]))
    assert leaf_grad(c) is None
    with pytest.warns(UserWarning, match="The .grad attribute of a Tensor that is not a leaf "
                                         "Tensor is being accessed"):
        assert y.grad is None
    with pytest.warns(UserWarning):
        assert z.grad is None


def test_retain_grad_on_non_leaf():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    assert y.retains_grad and not x.retains_grad
    (y * y).sum().backward()
    assert_close(no_warnings(lambda: y.grad), [4.0, 8.0])  # dz/dy = 2y
    assert_close(x.grad, [8.0, 16.0])
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        jg.tensor([1.0]).retain_grad()


def test_backward_on_scalar_seeds_one():
    x = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    assert_close(x.grad, [2.0, 4.0, 6.0])
    x2 = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x2 * x2).sum().backward(jg.tensor(1.0))
    assert_close(x2.grad, arr(x.grad))
    # a one-element tensor that is not 0-d also seeds 1
    x3 = jg.tensor([4.0], requires_grad=True)
    (x3 * x3).backward()
    assert_close(x3.grad, [8.0])


def test_backward_vjp_matches_float64_jacobian():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    w = rng.standard_normal((4, 2))
    v = rng.standard_normal((3, 2))
    x = jg.tensor(a, requires_grad=True)
    W = jg.tensor(w, requires_grad=True)
    y = jg.tanh(x @ W)
    y.backward(jg.tensor(v))
    t = np.tanh(a @ w)
    gy = v * (1 - t ** 2)
    assert_close(x.grad, gy @ w.T, rtol=1e-12, atol=1e-12)
    assert_close(W.grad, a.T @ gy, rtol=1e-12, atol=1e-12)


def test_backward_gradient_shape_mismatch():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError) as e:
        y.backward(jg.ones(3))
    assert str(e.value) == ("Mismatch in shape: grad_output[0] has a shape of "
                            "jitgrad.Size([3]) and output[0] has a shape of jitgrad.Size([2]).")
    assert leaf_grad(x) is None
    y.backward(jg.tensor([1.0, -1.0]))  # the graph is intact after the error
    assert_close(x.grad, [2.0, -2.0])


def test_backward_on_non_scalar_without_gradient():
    x = jg.tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        (x * 2).backward()
    assert str(e.value) == "grad can be implicitly created only for scalar outputs"


def test_backward_on_tensor_without_grad_fn():
    a = jg.tensor([1.0, 2.0])
    for t in (a, (a * 2).sum()):
        with pytest.raises(RuntimeError) as e:
            t.backward()
        assert str(e.value) == ("element 0 of tensors does not require grad and does not "
                                "have a grad_fn")
    x = jg.tensor([1.0], requires_grad=True)
    with jg.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad"):
        y.backward()


def test_backward_on_leaf_itself():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    x.backward(jg.tensor([5.0, 6.0]))
    assert_close(x.grad, [5.0, 6.0])


def test_backward_inputs_argument():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    w = jg.tensor([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward(inputs=[w])
    assert leaf_grad(x) is None
    assert_close(w.grad, [1.0, 2.0])


def test_backward_does_not_alias_the_upstream_gradient():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    v = jg.tensor([1.0, 1.0])
    (x + 0).backward(v)
    v.add_(5)
    assert_close(x.grad, [1.0, 1.0])


def test_autograd_backward_function_with_several_roots():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y1 = x * x
    y2 = (x * 3).sum()
    jg.autograd.backward([y1, y2], [jg.tensor([1.0, 10.0]), None])
    assert_close(x.grad, [2.0 + 3.0, 40.0 + 3.0])


def test_broadcast_gradients_are_summed_to_the_leaf_shape():
    rng = np.random.default_rng(4)
    a, b, v = rng.standard_normal((3, 1)), rng.standard_normal(4), rng.standard_normal((2, 3, 4))
    x = jg.tensor(a, requires_grad=True)
    y = jg.tensor(b, requires_grad=True)
    s = jg.tensor(1.5, dtype=jg.float64, requires_grad=True)
    out = (x * y + s) * jg.ones(2, 1, 1, dtype=jg.float64)
    assert out.shape == (2, 3, 4)
    out.backward(jg.tensor(v))
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,) and s.grad.shape == ()
    assert_close(x.grad, (v * b).sum(axis=(0, 2))[:, None], rtol=1e-12)
    assert_close(y.grad, (v * a).sum(axis=(0, 1)), rtol=1e-12)
    assert_close(s.grad, v.sum(), rtol=1e-12)


def test_grad_has_the_leaf_dtype_after_promotion():
    x = jg.tensor([1.0, 2.0], requires_grad=True)                   # float32
    w = jg.tensor([3.0, 4.0], dtype=jg.float64, requires_grad=True)
    y = x * w
    assert y.dtype == jg.float64
    y.sum().backward()
    assert x.grad.dtype == jg.float32 and w.grad.dtype == jg.float64
    assert_close(x.grad, [3.0, 4.0])
    assert_close(w.grad, [1.0, 2.0])


# ---------------------------------------------------------------------------------------
# graph structure
# ---------------------------------------------------------------------------------------

def test_next_functions_end_in_accumulate_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    w = jg.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).exp().sum()
    assert type(y.grad_fn).__name__ == "SumBackward0"
    (exp_fn, nr), = y.grad_fn.next_functions
    assert nr == 0 and type(exp_fn).__name__ == "ExpBackward0"
    (mul_fn, _), = exp_fn.next_functions
    assert type(mul_fn).__name__ == "MulBackward0"
    (ax, nx), (aw, nw) = mul_fn.next_functions
    assert type(ax).__name__ == "AccumulateGrad" and type(aw).__name__ == "AccumulateGrad"
    assert (nx, nw) == (0, 0)
    assert ax.variable is x and aw.variable is w
    assert ax.next_functions == () and aw.next_functions == ()


def test_same_accumulate_grad_for_the_same_leaf():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    b = x + 1
    c = a * b
    acc_a = a.grad_fn.next_functions[0][0]
    acc_b = b.grad_fn.next_functions[0][0]
    assert acc_a is acc_b
    sq = x * x
    assert sq.grad_fn.next_functions[0][0] is sq.grad_fn.next_functions[1][0] is acc_a
    assert [type(f).__name__ for f, _ in c.grad_fn.next_functions] == ["MulBackward0",
                                                                       "AddBackward0"]


def test_scalar_and_no_grad_operands_are_none_edges():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    c = jg.tensor([3.0, 4.0])
    for y in (x * 2, 2 * x, x + c, x - 1.5, x / 3):  # a reflected op still lists x first
        (acc, nr), other = y.grad_fn.next_functions
        assert type(acc).__name__ == "AccumulateGrad" and acc.variable is x and nr == 0
        assert other == (None, 0)
    y = jg.tensor(3.0) * x
    assert y.grad_fn.next_functions[0] == (None, 0)
    assert type(y.grad_fn.next_functions[1][0]).__name__ == "AccumulateGrad"
    y = x * c
    assert y.grad_fn.next_functions[1] == (None, 0)


def test_multi_output_nodes_number_their_outputs():
    x = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    parts = x.split(1)
    assert all(p.grad_fn is parts[0].grad_fn for p in parts)
    assert type(parts[0].grad_fn).__name__ == "SplitBackward0"
    y = parts[2] * 3
    assert y.grad_fn.next_functions[0] == (parts[0].grad_fn, 2)
    (y + parts[0]).sum().backward()
    assert_close(x.grad, [1.0, 0.0, 3.0])


def test_grad_fn_names_of_common_ops():
    x = jg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    names = {
        "AddBackward0": x + 1, "SubBackward0": x - x, "MulBackward0": x * x,
        "DivBackward0": x / 2, "NegBackward0": -x, "PowBackward0": x ** 2,
        "ExpBackward0": x.exp(), "LogBackward0": x.log(), "TanhBackward0": x.tanh(),
        "SigmoidBackward0": x.sigmoid(), "ReluBackward0": x.relu(),
        "SumBackward0": x.sum(), "SumBackward1": x.sum(0), "MeanBackward0": x.mean(),
        "MmBackward0": x @ x, "ViewBackward0": x.view(4), "TBackward0": x.t(),
        "PermuteBackward0": x.permute(1, 0), "SelectBackward0": x[0],
        "SliceBackward0": x[1:], "IndexBackward0": x[jg.tensor([0, 0])],
        "UnsqueezeBackward0": x.unsqueeze(0), "ExpandBackward0": x[:1].expand(3, 2),
        "CloneBackward0": x.clone(), "SoftmaxBackward0": x.softmax(1),
        "CatBackward0": jg.cat([x, x]), "StackBackward0": jg.stack([x, x]),
        "RsubBackward1": 1 - x, "ToCopyBackward0": x.double(),
    }
    for name, t in names.items():
        assert type(t.grad_fn).__name__ == name, (name, t.grad_fn)
        assert t.grad_fn.name() == name


def test_graph_is_dynamic_and_rebuilt_each_iteration():
    """A Python loop whose length changes per iteration: y = x**k via k multiplications,
    plus a data-dependent branch."""
    x = jg.tensor([0.5, -1.5, 2.0], requires_grad=True)
    xv = np.array([0.5, -1.5, 2.0])
    for k in [1, 4, 2, 7, 3]:
        x.grad = None
        y = x
        for _ in range(k - 1):
            y = y * x
        if k % 2:
            z = (y * y).sum()          # x**(2k): 2k x**(2k-1)
            expected = 2 * k * xv ** (2 * k - 1)
        else:
            z = y.sum() + x.sin().sum()  # x**k + sin x
            expected = k * xv ** (k - 1) + np.cos(xv)
        z.backward()
        assert_close(x.grad, expected, rtol=1e-5, atol=1e-5)
        # the structure depends on k: count the MulBackward0 nodes in the graph
        seen, stack, muls = set(), [z.grad_fn], 0
        while stack:
            n = stack.pop()
            if n is None or id(n) in seen:
                continue
            seen.add(id(n))
            muls += type(n).__name__ == "MulBackward0"
            stack.extend(f for f, _ in n.next_functions)
        assert muls == (k - 1) + (k % 2)


def test_dynamic_graph_varying_lengths_rnn_like():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3)) * 0.5
    W = jg.tensor(w, requires_grad=True)
    for length in [1, 5, 3]:
        W.grad = None
        xs = rng.standard_normal((length, 3))
        h = jg.zeros(3, dtype=jg.float64)
        for t in range(length):
            h = jg.tanh(W @ h + jg.tensor(xs[t]))
        h.sum().backward()
        # float64 numpy forward + reverse mode
        hs = [np.zeros(3)]
        for t in range(length):
            hs.append(np.tanh(w @ hs[-1] + xs[t]))
        gw = np.zeros((3, 3))
        gh = np.ones(3)
        for t in range(length, 0, -1):
            ga = gh * (1 - hs[t] ** 2)
            gw += np.outer(ga, hs[t - 1])
            gh = w.T @ ga
        assert_close(W.grad, gw, rtol=1e-10, atol=1e-12)


def test_chain_of_100_ops():
    rng = np.random.default_rng(2)
    x0 = rng.uniform(0.5, 1.5, 8)
    x = jg.tensor(x0, requires_grad=True)
    y = x
    val = x0.copy()
    dval = np.ones(8)  # d val / d x0, elementwise (the chain is elementwise)
    for i in range(100):
        k = i % 5
        if k == 0:
            y, val, dval = y * 1.01, val * 1.01, dval * 1.01
        elif k == 1:
            y, val = y + 0.1, val + 0.1
        elif k == 2:
            y, val, dval = y.sin() + 1.5, np.sin(val) + 1.5, dval * np.cos(val)
        elif k == 3:
            y, val, dval = y.sqrt(), np.sqrt(val), dval * 0.5 / np.sqrt(val)
        else:
            y, val, dval = y.tanh() + 1.0, np.tanh(val) + 1.0, dval * (1 - np.tanh(val) ** 2)
    assert_close(y, val, rtol=1e-12)
    y.sum().backward()
    assert_close(x.grad, dval, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------
# detach, .data, version counters
# ---------------------------------------------------------------------------------------

def test_version_is_an_int():
    t = jg.zeros(2)
    t.add_(1)
    assert t._version == 1


def test_detach_shares_storage_and_version_counter():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    d[0] = 10.0
    assert arr(x).tolist() == [10.0, 2.0]
    assert ver(x) == ver(d) == 1
    d.add_(1)
    assert ver(x) == 2 and arr(x).tolist() == [11.0, 3.0]
    y = (x * 2)
    d2 = y.detach()
    d2.mul_(0)
    assert ver(y) == 1 and arr(y).tolist() == [0.0, 0.0]


def test_data_shares_storage_but_not_version_counter():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    dd = x.data
    assert not dd.requires_grad and dd.grad_fn is None
    dd.add_(1)
    assert arr(x).tolist() == [2.0, 3.0]
    assert ver(dd) == 1 and ver(x) == 0
    # so changing .data behind autograd's back is not caught (PyTorch's documented hazard)
    w = jg.tensor([1.0, 2.0], requires_grad=True)
    y = w * w
    w.data.mul_(10)
    y.sum().backward()
    assert_close(w.grad, [20.0, 40.0])


def test_inplace_ops_bump_versions():
    x = jg.tensor([1.0, 2.0, 3.0])
    assert ver(x) == 0
    x.add_(1)
    assert ver(x) == 1
    x.mul_(2)
    x += 1
    x -= 1
    x[0] = 5.0
    x[1:].sub_(1)
    assert ver(x) == 6
    x.zero_()
    assert ver(x) == 7
    y = x + 1  # out-of-place: no bump
    assert ver(x) == 7 and ver(y) == 0
    v = x[1:]
    v.fill_(2)
    assert ver(x) == ver(v) == 8


def test_modified_saved_tensor_is_detected():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # ExpBackward0 saves its output
    y.add_(1)
    with pytest.raises(RuntimeError) as e:
        y.sum().backward()
    msg = str(e.value)
    assert msg.startswith("one of the variables needed for gradient computation has been "
                          "modified by an inplace operation: [jitgrad.FloatTensor [2]]")
    assert "is at version 1; expected version 0 instead." in msg
    # a saved input (leaf that does not require grad)
    w = jg.tensor([1.0, 2.0], requires_grad=True)
    a = jg.tensor([3.0, 4.0])
    y = w * a
    a.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    assert leaf_grad(w) is None


def test_inplace_on_input_not_saved_is_fine():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2
    y = a + 1    # add saves nothing
    a.mul_(3)
    y.sum().backward()
    assert_close(x.grad, [2.0, 2.0])


def test_inplace_on_a_tensor_without_grad_keeps_what_autograd_needs():
    """An in-place op on a tensor that does not require grad copies its old values only
    when autograd records the op: ``x.mul_(w)`` with ``w`` requiring grad saves the old
    ``x`` (w's gradient); ``x.relu_()`` records nothing and needs no copy."""
    x = jg.tensor([1.0, -2.0, 3.0])
    w = jg.tensor([2.0, 3.0, 4.0], requires_grad=True)
    x.mul_(w)
    assert x.requires_grad and x.grad_fn.name() == "MulBackward0"
    assert_close(x.detach(), [2.0, -6.0, 12.0])
    x.sum().backward()
    assert_close(w.grad, [1.0, -2.0, 3.0])  # the values before the update
    y = jg.tensor([1.0, -2.0])
    assert y.relu_() is y and y.grad_fn is None and not y.requires_grad
    assert_close(y, [1.0, 0.0])


# ---------------------------------------------------------------------------------------
# in-place rules
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", [
    lambda t: t.add_(1), lambda t: t.mul_(2), lambda t: t.zero_(), lambda t: t.exp_(),
    lambda t: t.__iadd__(1), lambda t: t.__setitem__(0, 3.0), lambda t: t.copy_(jg.ones(2)),
], ids=["add_", "mul_", "zero_", "exp_", "iadd", "setitem", "copy_"])
def test_inplace_on_leaf_requiring_grad_raises(op):
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError) as e:
        op(x)
    assert str(e.value) in (
        "a leaf Variable that requires grad is being used in an in-place operation.",
        "a view of a leaf Variable that requires grad is being used in an in-place operation.")
    assert arr(x).tolist() == [1.0, 2.0] and ver(x) == 0
    assert x.is_leaf and x.requires_grad and x.grad_fn is None


def test_inplace_on_view_of_leaf_raises():
    x = jg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    for view in (lambda: x[0], lambda: x.t(), lambda: x.view(4), lambda: x[:, 1]):
        with pytest.raises(RuntimeError) as e:
            view().mul_(2)
        assert str(e.value) == ("a view of a leaf Variable that requires grad is being used "
                                "in an in-place operation.")
    assert arr(x).tolist() == [[1.0, 2.0], [3.0, 4.0]] and ver(x) == 0


def test_inplace_on_leaf_under_no_grad_sgd_step():
    w = jg.tensor([1.0, -2.0], requires_grad=True)
    lr = 0.1
    for _ in range(3):
        w.grad = None
        loss = (w * w).sum()
        loss.backward()
        g = arr(w.grad)
        v = ver(w)
        with jg.no_grad():
            w -= lr * w.grad
        assert ver(w) == v + 1
        assert w.is_leaf and w.requires_grad and w.grad_fn is None
    assert_close(w, np.array([1.0, -2.0]) * 0.8 ** 3, rtol=1e-6)
    assert_close(w.grad, g)
    with jg.no_grad():
        w.zero_()
        w[0] = 7.0
    assert arr(w).tolist() == [7.0, 0.0] and w.is_leaf


def test_inplace_on_non_leaf_gives_correct_gradients():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = jg.tensor([3.0, 4.0], requires_grad=True)
    z = (x * 1).mul_(y)
    assert type(z.grad_fn).__name__ == "MulBackward0"
    assert not z.is_leaf
    (z * z).sum().backward()  # z = x*y: d(z^2)/dx = 2 x y^2, d(z^2)/dy = 2 x^2 y
    assert_close(x.grad, [18.0, 64.0])
    assert_close(y.grad, [6.0, 32.0])


def test_chain_of_inplace_ops_on_non_leaf():
    x = jg.tensor([0.5, 1.0], requires_grad=True)
    z = x.clone()
    z.mul_(3).add_(1).exp_().div_(2)   # z = exp(3x + 1) / 2
    z.sum().backward()
    xv = np.array([0.5, 1.0])
    assert_close(z, np.exp(3 * xv + 1) / 2, rtol=1e-6)
    assert_close(x.grad, 1.5 * np.exp(3 * xv + 1), rtol=1e-6)


def test_setitem_on_clone_gives_copyslices_and_grads():
    a = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = jg.tensor(5.0, requires_grad=True)
    b = a.clone()
    b[1] = v * 2
    assert type(b.grad_fn).__name__ == "CopySlices"
    assert type(b.grad_fn.next_functions[0][0]).__name__ == "CloneBackward0"
    assert arr(b).tolist() == [1.0, 10.0, 3.0]
    (b * b).sum().backward()
    assert_close(a.grad, [2.0, 0.0, 6.0])     # the overwritten element gets nothing
    assert_close(v.grad, 2 * 2 * 10.0)        # d(b1^2)/dv = 2 b1 * 2


def test_setitem_with_slices_and_tensor_indices():
    a = jg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    r = jg.tensor([7.0, 8.0], requires_grad=True)
    b = a * 1
    b[:, 0] = r
    b[jg.tensor([1]), jg.tensor([2])] = 0.0
    b.backward(jg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert_close(a.grad, [[0.0, 2.0, 3.0], [0.0, 5.0, 0.0]])
    assert_close(r.grad, [1.0, 4.0])


def test_views_of_a_long_lived_tensor_are_not_all_kept():
    """A parameter viewed every step (conv2d reshapes its weight) remembers only the views
    still alive (for in-place replays): the list does not grow with the steps."""
    w = jg.randn(4, 3, requires_grad=True)
    kept = w.t()
    for _ in range(1000):
        w.grad = None
        (w.t() * 2).sum().backward()
    refs = w.__dict__["_views"]
    assert len(refs) < 64 and any(r() is kept for r in refs)
    with jg.no_grad():
        w.mul_(2)  # an in-place write still reaches the view kept alive
    np.testing.assert_allclose(kept.detach().numpy(), w.detach().numpy().T)


def test_inplace_through_view_propagates_to_base_gradient():
    a = jg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = a.clone()
    v0 = ver(b)
    b[0].mul_(2)
    assert ver(b) == v0 + 1
    assert arr(b).tolist() == [[2.0, 4.0], [3.0, 4.0]]
    assert type(b.grad_fn).__name__ == "CopySlices"
    (b * b).sum().backward()   # b = [[2a00, 2a01], [a10, a11]]: d/da = [[8a, 8a], [2a, 2a]]
    assert_close(a.grad, [[8.0, 16.0], [6.0, 8.0]])


def test_inplace_through_view_then_use_view():
    a = jg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = a * 1
    v = b[1:3]
    v.mul_(a[0:2])  # v = [a1*a0, a2*a1]
    assert arr(b).tolist() == [1.0, 2.0, 6.0, 4.0]
    (v.sum() + b.sum()).backward()
    # total = 2*(a1 a0 + a2 a1) + a0 + a3: d/da = [2a1+1, 2a0+2a2, 2a1, 1]
    assert_close(a.grad, [5.0, 8.0, 4.0, 1.0])


def test_inplace_on_view_of_view_and_transposed_view():
    a = jg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = a.clone()
    row = b[1]
    row[0].mul_(5)
    assert arr(b).tolist() == [[1.0, 2.0], [15.0, 4.0]]
    b.sum().backward()
    assert_close(a.grad, [[1.0, 1.0], [5.0, 1.0]])

    a = jg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = a.clone()
    bt = b.t()
    bt[0, 1] = 10.0          # writes b[1, 0]
    assert arr(b).tolist() == [[1.0, 2.0], [10.0, 4.0]]
    b.backward(jg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert_close(a.grad, [[1.0, 2.0], [0.0, 4.0]])


def test_inplace_unary_on_view_then_use_the_view():
    a = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = a * 1
    v = b[1:]
    v.exp_()
    assert type(b.grad_fn).__name__ == "CopySlices"
    v.sum().backward()
    assert_close(a.grad, [0.0, math.exp(2.0), math.exp(3.0)], rtol=1e-6)




def test_view_made_before_inplace_on_base_sees_the_new_history():
    a = jg.tensor([1.0, 2.0], requires_grad=True)
    b = a.clone()
    v = b[0]
    b.mul_(2)
    assert v.item() == 2.0
    v.backward()
    assert_close(a.grad, [2.0, 0.0])   # torch: tensor([2., 0.]); jitgrad: [1., 0.]


def test_view_made_before_inplace_through_another_view():
    a = jg.tensor([1.0, 2.0], requires_grad=True)
    b = a.clone()
    w = b[:]
    b[0].mul_(3)
    assert arr(w).tolist() == [3.0, 2.0]
    w.sum().backward()
    assert_close(a.grad, [3.0, 1.0])   # torch: tensor([3., 1.]); jitgrad: [1., 1.]


@pytest.mark.parametrize("method", ["uniform_", "normal_"])
def test_random_fill_on_non_leaf_cuts_the_gradient(method):
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x.clone()
    getattr(y, method)()
    assert not y.is_leaf
    y.sum().backward()
    assert_close(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("op", [lambda t: t.zero_(), lambda t: t.fill_(2.0),
                                lambda t: t.copy_(jg.tensor([1.0, 1.0]))],
                         ids=["zero_", "fill_", "copy_"])
def test_overwriting_inplace_on_non_leaf_keeps_it_in_the_graph(op):
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    op(y)
    assert not y.is_leaf and y.grad_fn is not None
    z = y + x
    z.sum().backward()
    assert_close(x.grad, [1.0, 1.0])  # only the `+ x` path: y's old value is gone


def test_copy_from_tensor_requiring_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    src = jg.tensor([3.0, 4.0], requires_grad=True)
    y = x * 1
    y.copy_(src * 2)
    (y * y).sum().backward()
    assert_close(src.grad, [24.0, 32.0])       # y = 2 src: d(y^2)/dsrc = 8 src


# ---------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------

def test_hook_on_leaf_modifies_accumulated_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(arr(g)))
    h = x.register_hook(lambda g: g * 10)
    (x * x).sum().backward()
    assert_close(x.grad, [20.0, 40.0])
    assert [s.tolist() for s in seen] == [[2.0, 4.0]]  # hooks see the incoming gradient
    h.remove()
    x.grad = None
    (x * x).sum().backward()
    assert_close(x.grad, [2.0, 4.0])


def test_hook_on_non_leaf_changes_downstream_grads():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    m = x * 3
    seen = []

    def hook(g):
        seen.append(arr(g))
        return g * 2

    handle = m.register_hook(hook)
    (m * m).sum().backward()
    assert [s.tolist() for s in seen] == [[6.0, 12.0]]  # d(m^2)/dm = 2m
    assert_close(x.grad, [36.0, 72.0])                  # 2 * 2m * 3
    handle.remove()
    x.grad = None
    m2 = x * 3
    (m2 * m2).sum().backward()
    assert_close(x.grad, [18.0, 36.0])


def test_hooks_run_in_registration_order_and_feed_retain_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.register_hook(lambda g: g * 3)
    y.register_hook(lambda g: g + 1)
    (y * y).sum().backward()  # g = 2y = [4, 8] -> *3 -> +1 = [13, 25]
    assert_close(no_warnings(lambda: y.grad), [13.0, 25.0])
    assert_close(x.grad, [26.0, 50.0])


def test_hook_on_tensor_used_twice_runs_once_on_the_summed_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    m = x * 3
    calls = []
    m.register_hook(lambda g: calls.append(arr(g).tolist()))
    (m * m + m).sum().backward()        # d/dm = 2m + 1
    assert calls == [[7.0, 13.0]]
    assert_close(x.grad, [21.0, 39.0])


def test_retained_grad_accumulates():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert_close(no_warnings(lambda: y.grad), [8.0, 16.0])


def test_hook_returning_none_keeps_grad():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(1))
    (x * 4).sum().backward()
    assert calls == [1]
    assert_close(x.grad, [4.0, 4.0])


def test_hook_on_tensor_not_requiring_grad_raises():
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        jg.tensor([1.0]).register_hook(lambda g: g)


# ---------------------------------------------------------------------------------------
# backward twice, retain_graph
# ---------------------------------------------------------------------------------------

_FREED = ("Trying to backward through the graph a second time (or directly access saved "
          "tensors after they have already been freed). Saved intermediate values of the graph "
          "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if "
          "you need to backward through the graph a second time or if you need to access saved "
          "tensors after calling backward.")


@pytest.mark.parametrize("make", [
    lambda x: (x * x).sum(), lambda x: x.exp().sum(), lambda x: (x.sum() * 3 - 1).relu(),
    lambda x: (x @ x), lambda x: x.tanh().mean(),
], ids=["mul", "exp", "relu", "dot", "tanh"])
def test_second_backward_through_freed_graph_raises(make):
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = make(x)
    y.backward()
    g = arr(x.grad)
    with pytest.raises(RuntimeError) as e:
        y.backward()
    assert str(e.value) == _FREED
    assert_close(x.grad, g)  # nothing accumulated by the failed call


def test_retain_graph_allows_second_backward():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp().sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second"):
        y.backward()


def test_ops_without_saved_tensors_backward_twice():
    """Like PyTorch: add/sub/neg/sum/view save nothing, so their graph can run again."""
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = (-(x + x) - 1).reshape(2, 1).sum()
    y.backward()
    y.backward()
    assert_close(x.grad, [-4.0, -4.0])


# ---------------------------------------------------------------------------------------
# autograd.grad and higher order
# ---------------------------------------------------------------------------------------

def test_autograd_grad_returns_without_accumulating():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    g, = jg.autograd.grad((x * x).sum(), x)
    assert_close(g, [2.0, 4.0])
    assert leaf_grad(x) is None
    g, = jg.autograd.grad(x * x, x, grad_outputs=jg.tensor([1.0, -1.0]))
    assert_close(g, [2.0, -4.0])
    gs = jg.autograd.grad((x * x).sum(), [x])
    assert isinstance(gs, tuple) and len(gs) == 1


def test_second_and_third_derivative_of_x_cubed():
    x = jg.tensor(2.0, requires_grad=True)
    y = x ** 3
    g1, = jg.autograd.grad(y, x, create_graph=True)
    assert g1.item() == pytest.approx(12.0) and g1.requires_grad and g1.grad_fn is not None
    g2, = jg.autograd.grad(g1, x, create_graph=True)
    assert g2.item() == pytest.approx(12.0)   # 6x
    g3, = jg.autograd.grad(g2, x)
    assert g3.item() == pytest.approx(6.0)
    assert leaf_grad(x) is None


def test_second_derivative_vector_and_backward_create_graph():
    xv = np.array([0.3, -0.7, 1.1])
    x = jg.tensor(xv, requires_grad=True)
    y = (x.sin() * x).sum()
    g, = jg.autograd.grad(y, x, create_graph=True)   # sin x + x cos x
    assert_close(g, np.sin(xv) + xv * np.cos(xv), rtol=1e-12)
    g.sum().backward()                                 # 2 cos x - x sin x
    assert_close(x.grad, 2 * np.cos(xv) - xv * np.sin(xv), rtol=1e-12)
    # backward(create_graph=True) leaves a differentiable .grad
    x2 = jg.tensor(xv, requires_grad=True)
    (x2 ** 3).sum().backward(create_graph=True)
    assert x2.grad.requires_grad
    gg = x2.grad
    x2.grad = None
    gg.sum().backward()
    assert_close(x2.grad, 6 * xv, rtol=1e-12)


def test_hessian_vector_product():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))
    a = a + a.T
    xv = rng.standard_normal(3)
    v = rng.standard_normal(3)
    A = jg.tensor(a)
    x = jg.tensor(xv, requires_grad=True)
    f = (x @ (A @ x)) * 0.5 + (x ** 4).sum()
    g, = jg.autograd.grad(f, x, create_graph=True)
    assert_close(g, a @ xv + 4 * xv ** 3, rtol=1e-12)
    hv, = jg.autograd.grad(g, x, grad_outputs=jg.tensor(v))
    assert_close(hv, a @ v + 12 * xv ** 2 * v, rtol=1e-12)


def test_autograd_grad_allow_unused():
    x = jg.tensor(2.0, requires_grad=True)
    z = jg.tensor(3.0, requires_grad=True)
    gx, gz = jg.autograd.grad(x * 3, [x, z], allow_unused=True)
    assert gx.item() == 3.0 and gz is None
    with pytest.raises(RuntimeError, match="appears to not have been used in the graph. Set "
                                           "allow_unused=True if this is the desired behavior."):
        jg.autograd.grad(x * 3, [x, z])
    gx, gz = jg.autograd.grad(x * 3, [x, z], materialize_grads=True)
    assert gz.item() == 0.0


def test_autograd_grad_of_input_not_requiring_grad():
    x = jg.tensor([1.0], requires_grad=True)
    c = jg.tensor([1.0])
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not require "
                                           "grad"):
        jg.autograd.grad((x * c).sum(), [c])


def test_autograd_grad_wrt_non_leaf():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    m = x * 3
    y = (m * m).sum()
    gm, = jg.autograd.grad(y, m)
    assert_close(gm, [6.0, 12.0])


# ---------------------------------------------------------------------------------------
# errors leave tensors unchanged
# ---------------------------------------------------------------------------------------

def _state(t):
    return (arr(t).tolist(), ver(t), t.grad_fn, t.requires_grad, t.is_leaf)


def _leaf():
    return jg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)


def _with_clone():
    a = _leaf()
    return a, a.clone()


@pytest.mark.parametrize("make, call", [
    (_with_clone, lambda a, b: b.add_(jg.ones(4))),
    (_with_clone, lambda a, b: b.mul_(jg.ones(2, 1, 3))),
    (_with_clone, lambda a, b: b[0].mul_(jg.ones(2))),
    (_with_clone, lambda a, b: b.__setitem__(0, jg.ones(4))),
    (_with_clone, lambda a, b: b.__setitem__(5, 1.0)),
    (_with_clone, lambda a, b: b.__setitem__(jg.tensor([0, 7]), 1.0)),
    (_with_clone, lambda a, b: b.__iadd__("x")),
    (_with_clone, lambda a, b: b.masked_fill_(jg.tensor([True, False]), 1.0)),
    (lambda: (jg.tensor([1, 2]),), lambda a: a.add_(1.5)),
    (lambda: (jg.tensor([1, 2]), jg.tensor([1.5, 2.0])), lambda a, b: a.mul_(b)),
    (lambda: (jg.tensor([1, 2]),), lambda a: a.div_(2)),
    (lambda: (jg.tensor([1, 2]),), lambda a: a.exp_()),
    (lambda: (jg.tensor([1, 2]),), lambda a: a.pow_(-1)),
    (lambda: (jg.tensor([True]),), lambda a: a.sub_(jg.tensor([True]))),
    (lambda: (_leaf(),), lambda a: a.add_(1)),
    (lambda: (_leaf(),), lambda a: a[0].add_(1)),
    (lambda: (_leaf(),), lambda a: a.zero_()),
    (lambda: (jg.tensor([1, 2]),), lambda a: a.requires_grad_()),
    (lambda: (jg.zeros(3, 1).expand(3, 2),), lambda a: a.add_(1)),
    (lambda: (jg.zeros(2, 3), jg.ones(4)), lambda a, b: a.copy_(b)),
    (lambda: (jg.zeros(2, 3),), lambda a: a.clamp_()),
    (lambda: (lambda x: (x, x * 2))(_leaf()), lambda x, y: y.backward(jg.ones(3))),
    (lambda: (lambda x: (x, x * 2))(_leaf()), lambda x, y: y.backward()),
    (lambda: (jg.zeros(2, 3), jg.zeros(4, 5)), lambda a, b: a @ b),
    (lambda: (jg.zeros(2, 3), jg.zeros(4)), lambda a, b: a + b),
    (lambda: (jg.zeros(2, 3),), lambda a: a.view(4)),
], ids=["add_-shape", "mul_-broadcast-grows", "view-mul_-shape", "setitem-shape",
        "setitem-index", "setitem-tensor-index", "iadd-str", "masked_fill_-shape",
        "int-add_-float", "int-mul_-float", "int-div_", "int-exp_", "int-pow_-neg",
        "bool-sub_", "leaf-add_", "leaf-view-add_", "leaf-zero_", "int-requires_grad_",
        "expanded-add_", "copy_-shape", "clamp_-no-bounds", "backward-shape",
        "backward-nonscalar", "matmul-shape", "add-broadcast", "view-size"])
def test_errors_leave_tensors_unchanged(make, call):
    ts = make()
    before = [_state(t) for t in ts]
    grads_before = [leaf_grad(t) if t.is_leaf else None for t in ts]
    with pytest.raises((RuntimeError, TypeError, IndexError)):
        call(*ts)
    assert [_state(t) for t in ts] == before
    assert all((leaf_grad(t) if t.is_leaf else None) is g for t, g in zip(ts, grads_before))
    # the graph still works: a clone made before the error still backpropagates
    for t in ts:
        if t.requires_grad and t.grad_fn is not None:
            t.sum().backward()


def test_failed_inplace_keeps_graph_usable():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.add_(jg.ones(3))
    assert type(y.grad_fn).__name__ == "MulBackward0" and ver(y) == 0
    (y * y).sum().backward()
    assert_close(x.grad, [8.0, 16.0])


def test_anomaly_detection_names_the_function_that_made_nan():
    x = jg.tensor([0.0, 1.0], requires_grad=True)
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        mode = jg.autograd.detect_anomaly()
    with mode:
        y = x.sqrt() * 0  # d sqrt at 0 is inf; times 0 is NaN
        with pytest.raises(RuntimeError, match=r"Function 'SqrtBackward0' returned nan values "
                                               r"in its 0th output\."):
            y.sum().backward()
    assert not jg.autograd.is_anomaly_enabled()
    x.grad = None
    (x.sqrt() * 0).sum().backward()  # outside the mode: NaN passes silently, as in PyTorch
    assert np.isnan(x.grad.numpy()[0])
    # a step lazy mode has cached (seen twice now) still runs the checks in the mode
    x.grad = None
    with pytest.warns(UserWarning), jg.autograd.detect_anomaly():
        with pytest.raises(RuntimeError, match="'SqrtBackward0' returned nan values"):
            (x.sqrt() * 0).sum().backward()
