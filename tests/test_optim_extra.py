"""RMSprop, Adagrad and LBFGS against PyTorch and float64 numpy references.

RMSprop and Adagrad run 20 steps from the same weights with gradients that
depend on the weights (numpy computes them, so both libraries see the same
numbers), one parameter sitting out some steps. In float64 the result must
equal a numpy implementation of PyTorch's documented formula; in float32 it
must equal PyTorch's own optimizer to float32 rounding (PyTorch's vectorised
float32 sqrt is off by an ulp now and then, so not bit for bit). LBFGS runs
on the Rosenbrock function (float64: PyTorch's path exactly, evaluation
counts included) and on a quadratic whose minimum numpy knows.
"""
import copy
import re

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import optim

SHAPES = [(7, 5), (5,), (3, 4)]
STEPS = 20


def torch_or_skip():
    return pytest.importorskip("torch")


def problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s) for s in SHAPES]
    pulls = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    return start, pulls


def used(t, i):
    """Parameter ``i`` has a gradient at step ``t`` (parameter 1 sits out some steps)."""
    return not (i == 1 and t % 7 == 3)


def gradient(p, pull, sign):
    """The gradient of ``sign * (pull . p + 0.05 |p|^2)``, in ``p``'s dtype."""
    return (sign * (pull.astype(p.dtype) + p.dtype.type(0.1) * p)).astype(p.dtype)


def run(lib, make_opt, dtype, sign=1, steps=STEPS):
    """``steps`` steps of ``make_opt`` on weights of numpy ``dtype``."""
    start, pulls = problem()
    params = [lib.tensor(s.astype(dtype), requires_grad=True) for s in start]
    opt = make_opt(params)
    for t in range(steps):
        opt.zero_grad()
        for i, (p, pull) in enumerate(zip(params, pulls[t])):
            if used(t, i):
                p.grad = lib.tensor(gradient(p.detach().numpy(), pull, sign))
        opt.step()
    return [p.detach().numpy().copy() for p in params], opt


def reference(update, sign=1):
    """The same steps in float64 numpy, with ``update(t, p, g, state) -> p``."""
    start, pulls = problem()
    params = [s.copy() for s in start]
    states = [{} for _ in params]
    for t in range(STEPS):
        params = [update(p, gradient(p, pull, sign), st) if used(t, i) else p
                  for i, (p, pull, st) in enumerate(zip(params, pulls[t], states))]
    return params


def ref_rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                maximize=False):
    def update(p, g, st):
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        st["v"] = v = alpha * st.get("v", 0) + (1 - alpha) * g * g
        if centered:
            st["m"] = m = alpha * st.get("m", 0) + (1 - alpha) * g
            v = v - m * m
        avg = np.sqrt(v) + eps
        if momentum > 0:
            st["b"] = momentum * st.get("b", 0) + g / avg
            return p - lr * st["b"]
        return p - lr * g / avg
    return update


def ref_adagrad(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                maximize=False):
    def update(p, g, st):
        st["t"] = t = st.get("t", 0) + 1
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        st["sum"] = st.get("sum", initial_accumulator_value) + g * g
        return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(st["sum"]) + eps)
    return update


CASES = [
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.02, alpha=0.3, eps=1e-3, weight_decay=0.1)),  # lerp weight >= 0.5
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3, maximize=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CASES]
REFS = {"RMSprop": ref_rmsprop, "Adagrad": ref_adagrad}


def sign(kwargs):
    return -1 if kwargs.get("maximize") else 1


@pytest.mark.parametrize("name, kwargs", CASES, ids=IDS)
def test_float64_matches_numpy_reference(name, kwargs):
    ours, _ = run(jg, lambda ps: getattr(optim, name)(ps, **kwargs), "float64", sign(kwargs))
    expected = reference(REFS[name](**kwargs), sign(kwargs))
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, kwargs", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_torch_trajectory_and_state(name, kwargs, dtype):
    torch = torch_or_skip()
    ours, opt = run(jg, lambda ps: getattr(optim, name)(ps, **kwargs), dtype, sign(kwargs))
    theirs, topt = run(torch, lambda ps: getattr(torch.optim, name)(ps, **kwargs), dtype,
                       sign(kwargs))
    # float32: a few ulps of the ~1-sized weights (PyTorch's sqrt), never a formula's worth
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **tol)
    ours_sd, theirs_sd = opt.state_dict(), topt.state_dict()
    assert list(ours_sd["state"]) == list(theirs_sd["state"])
    for i, state in theirs_sd["state"].items():
        assert list(ours_sd["state"][i]) == list(state)  # PyTorch's names, in its order
        for key, value in state.items():
            np.testing.assert_allclose(ours_sd["state"][i][key].numpy(), value.numpy(), **tol)
            assert ours_sd["state"][i][key].dtype.is_floating_point
    group, tgroup = ours_sd["param_groups"][0], theirs_sd["param_groups"][0]
    assert set(group) == set(tgroup)
    assert {k: group[k] for k in kwargs} == {k: tgroup[k] for k in kwargs}


@pytest.mark.parametrize("name, kwargs", [CASES[4], CASES[7]], ids=[IDS[4], IDS[7]])
def test_state_dict_round_trip_continues_the_run(name, kwargs):
    make = lambda ps: getattr(optim, name)(ps, **kwargs)  # noqa: E731
    whole, _ = run(jg, make, "float32", sign(kwargs))
    _, first = run(jg, make, "float32", sign(kwargs), steps=STEPS // 2)
    saved = copy.deepcopy(first.state_dict())
    start, pulls = problem()
    params = [jg.tensor(p.detach().numpy().copy(), requires_grad=True)
              for p in first.param_groups[0]["params"]]
    resumed = make(params)
    resumed.load_state_dict(saved)
    for t in range(STEPS // 2, STEPS):
        resumed.zero_grad()
        for i, (p, pull) in enumerate(zip(params, pulls[t])):
            if used(t, i):
                p.grad = jg.tensor(gradient(p.detach().numpy(), pull, sign(kwargs)))
        resumed.step()
    for a, b in zip(whole, params):
        np.testing.assert_array_equal(a, b.detach().numpy())


def test_hyperparameters_changed_between_steps_are_used():
    torch = torch_or_skip()
    out = []
    for lib in (jg, torch):
        p = lib.tensor(np.linspace(-1, 1, 6), requires_grad=True)
        opt = lib.optim.RMSprop([p], lr=0.01, momentum=0.5, centered=True)
        for t in range(6):
            if t == 3:
                opt.param_groups[0].update(lr=0.1, momentum=0.9, alpha=0.5, weight_decay=0.1)
            p.grad = lib.tensor(np.cos(np.arange(6.0) + t))
            opt.step()
        out.append(p.detach().numpy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12)


def test_adagrad_state_exists_from_construction():
    a, b = jg.tensor([1.0, 2.0], requires_grad=True), jg.tensor([3.0], requires_grad=True)
    opt = optim.Adagrad([a, b], initial_accumulator_value=0.25)
    state = opt.state_dict()["state"]
    assert list(state) == [0, 1] and list(state[0]) == ["step", "sum"]
    assert float(state[0]["step"]) == 0 and state[1]["sum"].tolist() == [0.25]
    a.grad = jg.tensor([1.0, 1.0])
    opt.step()  # b has no gradient: its state stays as it was
    state = opt.state_dict()["state"]
    assert float(state[0]["step"]) == 1 and state[0]["sum"].tolist() == [1.25, 1.25]
    assert float(state[1]["step"]) == 0 and state[1]["sum"].tolist() == [0.25]


BAD_ARGS = [
    ("RMSprop", dict(lr=-1), "Invalid learning rate: -1"),
    ("RMSprop", dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    ("RMSprop", dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    ("RMSprop", dict(weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    ("RMSprop", dict(alpha=-0.1), "Invalid alpha value: -0.1"),
    ("Adagrad", dict(lr=-1), "Invalid learning rate: -1"),
    ("Adagrad", dict(lr_decay=-1), "Invalid lr_decay value: -1"),
    ("Adagrad", dict(weight_decay=-2), "Invalid weight_decay value: -2"),
    ("Adagrad", dict(initial_accumulator_value=-1),
     "Invalid initial_accumulator_value value: -1"),
    ("Adagrad", dict(eps=-1e-10), "Invalid epsilon value: -1e-10"),
    ("LBFGS", dict(lr=-1), "Invalid learning rate: -1"),
]


@pytest.mark.parametrize("name, kwargs, message", BAD_ARGS,
                         ids=[f"{n}-{next(iter(k))}" for n, k, _ in BAD_ARGS])
def test_bad_arguments_raise_torch_messages(name, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        getattr(optim, name)([jg.zeros(2, requires_grad=True)], **kwargs)
    try:
        import torch
    except ImportError:
        return
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)


# --- LBFGS ---------------------------------------------------------------------------------


def rosenbrock(lib, dtype, steps, **kwargs):
    """``steps`` LBFGS steps on the Rosenbrock function from (-1.5, 2); per step the point,
    ``func_evals`` and ``n_iter``."""
    x = lib.tensor(np.array([-1.5, 2.0], dtype=dtype), requires_grad=True)
    opt = lib.optim.LBFGS([x], **kwargs)

    def closure():
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    path = []
    for _ in range(steps):
        loss = opt.step(closure)
        state = opt.state[x]
        path.append((x.detach().numpy().copy(), loss.item(), state["func_evals"],
                     state["n_iter"]))
    return path, opt


LBFGS_CASES = [dict(max_iter=5), dict(lr=0.1, history_size=3, max_iter=4),
               dict(line_search_fn="strong_wolfe", max_iter=5),
               dict(line_search_fn="strong_wolfe", history_size=2, max_iter=3)]
LBFGS_IDS = ["-".join(f"{k}={v}" for k, v in kw.items()) for kw in LBFGS_CASES]


@pytest.mark.parametrize("kwargs", LBFGS_CASES, ids=LBFGS_IDS)
def test_lbfgs_follows_torch_in_float64(kwargs):
    torch = torch_or_skip()
    ours, _ = rosenbrock(jg, np.float64, 6, **kwargs)
    theirs, _ = rosenbrock(torch, np.float64, 6, **kwargs)
    for (x, loss, evals, iters), (tx, tloss, tevals, titers) in zip(ours, theirs):
        np.testing.assert_allclose(x, tx, rtol=1e-9, atol=1e-12)
        assert loss == pytest.approx(tloss, rel=1e-9, abs=1e-12)
        assert (evals, iters) == (tevals, titers)


@pytest.mark.parametrize("kwargs", LBFGS_CASES, ids=LBFGS_IDS)
def test_lbfgs_follows_torch_in_float32(kwargs):
    torch = torch_or_skip()
    ours, _ = rosenbrock(jg, np.float32, 3, **kwargs)
    theirs, _ = rosenbrock(torch, np.float32, 3, **kwargs)
    for (x, _, evals, iters), (tx, _, tevals, titers) in zip(ours, theirs):
        np.testing.assert_allclose(x, tx, rtol=1e-4, atol=1e-5)
        assert (evals, iters) == (tevals, titers)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_solves_a_least_squares_problem(line_search_fn):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal(30)
    w = jg.zeros(4, dtype=jg.float64, requires_grad=True)
    A, B = jg.tensor(a), jg.tensor(b)
    opt = optim.LBFGS([w], line_search_fn=line_search_fn, history_size=5, tolerance_grad=1e-12,
                      tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = ((A @ w - B) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(w.detach().numpy(), np.linalg.lstsq(a, b, rcond=None)[0],
                               rtol=1e-6, atol=1e-8)
    assert len(opt.state[w]["old_dirs"]) <= 5


def test_lbfgs_state_dict_round_trip_continues_the_run():
    whole, _ = rosenbrock(jg, np.float64, 4, max_iter=3, history_size=4)
    first, opt = rosenbrock(jg, np.float64, 2, max_iter=3, history_size=4)
    saved = opt.state_dict()
    assert {"d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss",
            "n_iter", "func_evals"} <= set(saved["state"][0])
    x = jg.tensor(first[-1][0], requires_grad=True)
    resumed = optim.LBFGS([x], max_iter=3, history_size=4)
    resumed.load_state_dict(saved)
    assert resumed.state[x]["d"] is not saved["state"][0]["d"]  # loaded state is a copy

    def closure():
        resumed.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    for _ in range(2):
        resumed.step(closure)
    np.testing.assert_array_equal(x.detach().numpy(), whole[-1][0])
    assert resumed.state[x]["func_evals"] == whole[-1][2]


def test_lbfgs_errors():
    x = jg.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        optim.LBFGS([{"params": [x]}, {"params": [jg.zeros(1, requires_grad=True)]}])
    opt = optim.LBFGS([x], line_search_fn="armijo")

    def closure():
        opt.zero_grad()
        loss = ((x - 1) ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)
