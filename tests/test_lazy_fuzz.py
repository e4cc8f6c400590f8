"""Lazy mode against eager mode on random programs.

Each seed builds a short program over three (3, 4) leaves (contiguous, stored
transposed, strided over a wider array, or not requiring grad): ops drawn from a
table that covers elementwise math, broadcasting, reductions, views, indexing,
matmuls, in-place writes (some of them on saved tensors, which must raise) and
mid-program reads. The program runs three times, the leaves changed in place
between runs (so cached Programs and their input plans are reused on new
values), with one of four backward forms. Lazy mode must give eager mode's
losses, gradients and outputs, or raise the same error.
"""
import numpy as np
import pytest

import jitgrad as jg

F = jg.nn.functional


def _method(name):
    return lambda a: getattr(a, name)()


def _row_add(a):
    c = a.clone()
    c[1].add_(1.0)  # in place through a view
    return c


def _setitem(a):
    c = a * 1.0
    c[:, 1] = a[:, 2] * 3
    return c


def _no_grad_part(a):
    with jg.no_grad():
        b = a * 2
    return a + b


def _saved_output_changed(a):
    d = (a * 1.0).sigmoid()  # saves its output
    d.mul_(2)  # so a backward through it raises
    return d


def _eye_mm(a):
    return a @ jg.tensor(np.eye(4) * 0.5 + 0.1, dtype=a.dtype)


UNARY = [
    _method("tanh"), _method("sigmoid"), _method("relu"), _method("abs"), lambda a: -a,
    lambda a: (a * 0.3).exp(), lambda a: (a * a + 1).sqrt(), lambda a: (a * a + 0.5).log(),
    lambda a: a.clamp(-0.5, 0.7), lambda a: a ** 2, lambda a: 1.5 - a,
    lambda a: 1.0 / (a * a + 1), lambda a: a * 0.9, lambda a: a + 0.25,
    lambda a: a.t().contiguous().t(), lambda a: a.reshape(12).reshape(3, 4),
    lambda a: F.softmax(a, 1), lambda a: F.log_softmax(a, 0),
    lambda a: a - a.sum(1, keepdim=True) * 0.1, lambda a: a * a.mean(0, keepdim=True),
    lambda a: a - a.amax(1, keepdim=True), lambda a: a - a.var(1, keepdim=True),
    lambda a: a[:, [3, 2, 1, 0]], lambda a: a[[2, 0, 1]],
    lambda a: jg.cat([a[:, 2:], a[:, :2]], 1), lambda a: jg.stack([a, a * 2], 0).sum(0),
    lambda a: a[:, :1].expand(3, 4) + a, lambda a: jg.where(a > 0, a, a * 0.1), _eye_mm,
    lambda a: a.clone().mul_(2), lambda a: a.clone().tanh_(), _row_add, _setitem,
    lambda a: a * float(a.sum().item() * 0.01), lambda a: a.detach() * a, _no_grad_part,
    _saved_output_changed,
]
BINARY = [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (b * b + 1),
    lambda a, b: jg.maximum(a, b), lambda a, b: (a @ b.t()) @ a * 0.1, lambda a, b: a + b[0],
    lambda a, b: F.mse_loss(a, b, reduction="none"),
    lambda a, b: jg.bmm(a[None], b.t()[None])[0] @ a * 0.1,
]


def _leaves(rng, dtype):
    leaves = []
    for layout in rng.integers(0, 4, 3):
        a = rng.standard_normal((3, 4)).astype(dtype)
        if layout == 0:
            leaves.append(jg.tensor(a, requires_grad=True))
        elif layout == 1:  # stored transposed
            leaves.append(jg.tensor(np.ascontiguousarray(a.T).T, requires_grad=True))
        elif layout == 2:  # every other column of a wider array
            wide = np.zeros((3, 8), dtype)
            wide[:, ::2] = a
            leaves.append(jg.from_numpy(wide[:, ::2]).requires_grad_())
        else:
            leaves.append(jg.tensor(a))
    return leaves


def _program(seed, n_ops):
    rng = np.random.default_rng(seed)
    steps = []
    for k in range(n_ops):
        if rng.random() < 0.6:
            steps.append((UNARY[rng.integers(len(UNARY))], int(rng.integers(3 + k))))
        else:
            steps.append((BINARY[rng.integers(len(BINARY))], int(rng.integers(3 + k)),
                          int(rng.integers(3 + k))))
    return steps


def _backward(loss, leaves, how):
    wanted = [t for t in leaves if t.requires_grad]
    if not wanted:
        return
    if how == 0:
        loss.backward()
    elif how == 1:
        for t, g in zip(wanted, jg.autograd.grad(loss, wanted, allow_unused=True)):
            t.grad = g
    elif how == 2:
        loss.backward(retain_graph=True)
        loss.backward()
    else:
        grads = jg.autograd.grad(loss, wanted, create_graph=True, allow_unused=True)
        total = sum((g * g).sum() for g in grads if g is not None)
        if isinstance(total, jg.Tensor) and total.requires_grad:
            total.backward()


def _run(mode, seed, dtype, n_ops=7, runs=3):
    """Everything the program shows over ``runs`` runs: losses, gradients, last outputs."""
    previous = jg.get_mode()
    jg.set_mode(mode)
    try:
        leaves = _leaves(np.random.default_rng(seed + 1000), dtype)
        steps = _program(seed, n_ops)
        seen = []
        for _ in range(runs):
            for t in leaves:
                t.grad = None
            pool = list(leaves)
            for fn, *operands in steps:
                pool.append(fn(*[pool[k] for k in operands]))
            loss = sum((p * (0.1 * (i + 1))).sum() for i, p in enumerate(pool[3:]))
            loss = loss + pool[-1].tanh().sum()
            _backward(loss, leaves, seed % 4)
            seen.append(loss.item())
            seen += [None if t.grad is None else t.grad.detach().numpy().copy() for t in leaves]
            seen.append(pool[-1].detach().numpy().copy())
            with jg.no_grad():
                for t in leaves:
                    t.mul_(0.9).add_(0.05)
        return seen, None
    except Exception as error:  # the program's own error: lazy mode must raise it too
        return None, (type(error), str(error))
    finally:
        jg.set_mode(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", range(4))
def test_random_programs_match_eager_mode(block, dtype):
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    for seed in range(block * 25, block * 25 + 25):
        want, want_error = _run("eager", seed, dtype)
        got, got_error = _run("lazy", seed, dtype)
        assert got_error == want_error, f"seed {seed}"
        if want is None:
            continue
        for k, (a, b) in enumerate(zip(want, got)):
            assert (a is None) == (b is None), f"seed {seed}, value {k}"
            if a is not None:
                np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol,
                                           err_msg=f"seed {seed}, value {k}")
