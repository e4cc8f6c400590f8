"""jitgrad.optim: fused arena optimizers against PyTorch and a float64 numpy reference.

Every optimizer runs 100 steps on a quadratic whose minimum moves each step,
with one parameter left without a gradient now and then (PyTorch skips such
parameters, state included). In float64 the result must equal a numpy
implementation of PyTorch's documented formula to ~1e-12; in float32 it must
equal PyTorch's own optimizer to float32 rounding.
"""
import math
import warnings

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn, optim
from jitgrad.optim import lr_scheduler

SHAPES = [(7, 5), (5,), (3, 4)]
STEPS = 100


def torch_or_skip():
    return pytest.importorskip("torch")


def problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(s) for s in SHAPES]
    targets = [[rng.standard_normal(s) * (1e-3 if t % 5 == 0 else 1) for s in SHAPES]
               for t in range(STEPS)]
    return start, targets


def used(t, i):
    """Parameter ``i`` takes part in step ``t``'s loss (parameter 1 sits out some steps)."""
    return not (i == 1 and t % 7 == 3)


def run(lib, make_opt, dtype, sign=1, seed=0):
    """100 steps of ``make_opt`` on ``sign`` * (0.5 * |p - target_t|^2 + a cross term).

    ``sign`` -1 with ``maximize=True`` climbs the negated loss, i.e. still descends.
    """
    start, targets = problem(seed)
    params = [lib.tensor(s, dtype=dtype, requires_grad=True) for s in start]
    opt = make_opt(params)
    for t in range(STEPS):
        opt.zero_grad()
        loss = 0
        for i, (p, target) in enumerate(zip(params, targets[t])):
            if used(t, i):
                loss = loss + ((p - lib.tensor(target, dtype=dtype)) ** 2).sum() * 0.5
        loss = loss + (params[0] * params[0]).sum() * params[2].sum() * 0.01
        (loss * sign).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in params], opt


def reference(update, sign=1, seed=0):
    """The same 100 steps in float64 numpy, with ``update(i, p, g, state) -> p``."""
    start, targets = problem(seed)
    params = [s.copy() for s in start]
    states = [{} for _ in params]
    for t in range(STEPS):
        p0, p2 = params[0], params[2]
        grads = [p - target if used(t, i) else None
                 for i, (p, target) in enumerate(zip(params, targets[t]))]
        grads[0] = grads[0] + 0.02 * p0 * p2.sum()
        grads[2] = grads[2] + 0.01 * (p0 * p0).sum()
        params = [p if g is None else update(i, p, g * sign, st)
                  for i, (p, g, st) in enumerate(zip(params, grads, states))]
    return params


def ref_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    def update(i, p, g, st):
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            st["buf"] = g.copy() if "buf" not in st else momentum * st["buf"] + (1 - dampening) * g
            g = g + momentum * st["buf"] if nesterov else st["buf"]
        return p - lr * g
    return update


def ref_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             maximize=False, decoupled=False):
    b1, b2 = betas

    def update(i, p, g, st):
        st["t"] = t = st.get("t", 0) + 1
        g = -g if maximize else g
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        st["m"] = b1 * st.get("m", 0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0) + (1 - b2) * g * g
        v = st["v"]
        if amsgrad:
            st["vmax"] = v = np.maximum(st.get("vmax", 0), v)
        return p - lr / (1 - b1 ** t) * st["m"] / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
    return update


CASES = [
    ("SGD", dict(lr=0.05), ref_sgd),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01), ref_sgd),
    ("SGD", dict(lr=0.02, momentum=0.8, nesterov=True, maximize=True), ref_sgd),
    ("Adam", dict(lr=0.01), ref_adam),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1, amsgrad=True), ref_adam),
    ("Adam", dict(lr=0.01, maximize=True), ref_adam),
    ("AdamW", dict(lr=0.01), lambda **kw: ref_adam(decoupled=True, weight_decay=1e-2, **kw)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True),
     lambda **kw: ref_adam(decoupled=True, **kw)),
]
IDS = [f"{name}-{'-'.join(map(str, kw.values()))}" for name, kw, _ in CASES]


def sign(kwargs):
    return -1 if kwargs.get("maximize") else 1


@pytest.mark.parametrize("name, kwargs, ref", CASES, ids=IDS)
def test_float64_matches_numpy_reference(name, kwargs, ref):
    ours, _ = run(jg, lambda ps: getattr(optim, name)(ps, **kwargs), jg.float64, sign(kwargs))
    expected = reference(ref(**kwargs), sign(kwargs))
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, ref, phases", [
    ("SGD", ref_sgd, [dict(lr=0.05), dict(lr=0.2, momentum=0.5),
                      dict(lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True)]),
    ("Adam", ref_adam, [dict(lr=0.01), dict(lr=0.1, betas=(0.5, 0.9)),
                        dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3, amsgrad=True)]),
], ids=["SGD", "Adam"])
def test_hyperparameters_changed_between_steps_are_used(name, ref, phases):
    """A group's hyperparameters are read at every step (a scheduler, or the user, sets
    them): three phases of steps, each following the float64 reference with its values."""
    start, targets = problem()
    params = [jg.tensor(s, dtype=jg.float64, requires_grad=True) for s in start]
    opt = getattr(optim, name)(params, **phases[0])
    expected, states = [s.copy() for s in start], [{} for _ in start]
    for t in range(12):
        hyper = phases[t // 4]
        opt.param_groups[0].update(hyper)
        opt.zero_grad()
        loss = sum(((p - jg.tensor(target)) ** 2).sum() * 0.5
                   for p, target in zip(params, targets[t]))
        (loss * (-1 if hyper.get("maximize") else 1)).backward()
        opt.step()
        update = ref(**hyper)
        expected = [update(i, p, (p - target) * (-1 if hyper.get("maximize") else 1), st)
                    for i, (p, target, st) in enumerate(zip(expected, targets[t], states))]
    for p, want in zip(params, expected):
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, kwargs, ref", CASES, ids=IDS)
def test_float32_close_to_numpy_reference(name, kwargs, ref):
    ours, _ = run(jg, lambda ps: getattr(optim, name)(ps, **kwargs), jg.float32, sign(kwargs))
    assert all(a.dtype == np.float32 for a in ours)
    for a, b in zip(ours, reference(ref(**kwargs), sign(kwargs))):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name, kwargs, ref", CASES, ids=IDS)
def test_float32_matches_torch(name, kwargs, ref):
    torch = torch_or_skip()
    s = sign(kwargs)
    ours, opt = run(jg, lambda ps: getattr(optim, name)(ps, **kwargs), jg.float32, s)
    theirs, topt = run(torch, lambda ps: getattr(torch.optim, name)(ps, **kwargs), torch.float32,
                       s)
    for a, b in zip(ours, theirs):  # gradients from each library's own backward
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the state matches too, under PyTorch's names
    ours_state, theirs_state = opt.state_dict()["state"], topt.state_dict()["state"]
    assert list(ours_state) == list(theirs_state)
    for k in ours_state:
        assert list(ours_state[k]) == list(theirs_state[k])
        for name_, value in ours_state[k].items():
            np.testing.assert_allclose(value.numpy(), theirs_state[k][name_].numpy(),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kwargs, ref", CASES, ids=IDS)
def test_identical_gradients_give_torch_updates(name, kwargs, ref):
    """Fed the very same gradients, SGD matches PyTorch bit for bit and Adam to a few ulps
    (PyTorch's vectorised float32 sqrt is not correctly rounded)."""
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [nn.Parameter(jg.tensor(s)) for s in start]
    theirs = [torch.nn.Parameter(torch.tensor(s)) for s in start]
    opt, topt = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for t in range(STEPS):
        for i, (p, q) in enumerate(zip(ours, theirs)):
            g = rng.standard_normal(p.shape).astype(np.float32) if used(t, i) else None
            p.grad, q.grad = (None, None) if g is None else (jg.tensor(g), torch.tensor(g))
        opt.step()
        topt.step()
    for p, q in zip(ours, theirs):
        if name == "SGD":
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=2e-6,
                                   atol=3e-7)


def test_model_trained_50_steps_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 10)).astype(np.float32), rng.integers(0, 3, 64)
    for make in (lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9),
                 lambda lib, ps: lib.optim.Adam(ps, lr=3e-3)):
        ours = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))
        theirs = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(),
                                     torch.nn.Linear(16, 3))
        theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                                for k, v in ours.state_dict().items()})
        results = []
        for lib, model in ((jg, ours), (torch, theirs)):
            opt = make(lib, model.parameters())
            for step in range(50):
                idx = np.arange(step % 4 * 16, step % 4 * 16 + 16)
                opt.zero_grad()
                loss = lib.nn.functional.cross_entropy(model(lib.tensor(x[idx])),
                                                       lib.tensor(y[idx]))
                loss.backward()
                opt.step()
            results.append([v.detach().numpy() for v in model.state_dict().values()])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


# --- the arena --------------------------------------------------------------------------

def test_parameters_and_gradients_live_in_one_arena():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    params = list(model.parameters())
    before = [p.detach().numpy().copy() for p in params]
    opt = optim.Adam(model.parameters(), lr=0.1)
    assert list(model.parameters()) == params  # the same Tensor objects
    (arena,) = opt._arenas[0]
    for p, b in zip(params, before):
        assert np.shares_memory(p.detach().numpy(), arena.data)
        np.testing.assert_array_equal(p.detach().numpy(), b)
    model(jg.randn(3, 4)).sum().backward()
    for p in params:  # the engine wrote each fresh gradient into the arena
        assert np.shares_memory(p.grad.numpy(), arena.grad)
    opt.step()
    exp_avg = opt.state[params[0]]["exp_avg"]
    assert np.shares_memory(exp_avg.numpy(), arena.buffers["exp_avg"])
    assert opt.state[params[0]]["step"].item() == 1.0
    assert arena.data.dtype == np.float32 and arena.buffers["exp_avg_sq"].dtype == np.float32
    opt.zero_grad(set_to_none=False)
    assert all(np.shares_memory(p.grad.numpy(), arena.grad) for p in params)
    assert not arena.grad.any()
    opt.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p, lr=0.01)])
def test_a_gradient_kept_from_an_earlier_step_keeps_its_values(make):
    """Gradients live in the optimizer's arena, but one the user keeps past zero_grad()
    keeps its values, as in PyTorch (where each backward after zero_grad() makes a new
    gradient), whichever way the next gradient comes: a replayed step, the autograd
    engine, or a gradient the user sets. Each step's gradient looks new (version 0)."""
    jg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = make(model.parameters())
    x, y = jg.randn(16, 4), jg.randn(16, 1)
    w = model[0].weight
    kept = []
    for step in range(8):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean() if step != 5 else (model(x) - y).abs().mean()
        loss.backward()  # step 5: another graph (the engine, in lazy mode too)
        g = w.grad
        assert g._version == 0 and not g.requires_grad and g.grad_fn is None
        if step in (1, 3, 5, 6):
            kept.append((g, g.numpy().copy()))
        if step == 2:
            g.mul_(0.5)  # changed in place, then dropped
        if step == 6:  # a gradient set by the user goes into the arena by copy
            w.grad = jg.full_like(w, 0.25)
        opt.step()
    for g, values in kept:
        np.testing.assert_array_equal(g.numpy(), values)
    assert len({id(g) for g, _ in kept}) == len(kept)


def test_parameters_without_gradient_are_skipped():
    a, b = nn.Parameter(jg.ones(3)), nn.Parameter(jg.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    version = b._version
    opt.step()
    assert b.tolist() == [1.0, 1.0] and b not in opt.state and b._version == version
    assert a.tolist() != [1.0, 1.0, 1.0] and opt.state[a]["step"].item() == 1
    sgd = optim.SGD([a, b], lr=0.1, momentum=0.9)
    sgd.zero_grad()
    (b * 3).sum().backward()
    sgd.step()
    assert a not in sgd.state and "momentum_buffer" in sgd.state[b]


def test_groups_get_their_own_arenas_and_hyperparameters():
    lin1, lin2 = nn.Linear(3, 3), nn.Linear(3, 3)
    opt = optim.SGD([{"params": lin1.parameters()}, {"params": lin2.parameters(), "lr": 0.0}],
                    lr=0.5, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.0]
    assert opt.param_groups[1]["momentum"] == 0.9 and len(opt._arenas) == 2
    frozen = lin2.weight.detach().numpy().copy()
    before = lin1.weight.detach().numpy().copy()
    (lin2(lin1(jg.randn(2, 3)))).sum().backward()
    opt.step()
    np.testing.assert_array_equal(lin2.weight.detach().numpy(), frozen)
    assert not np.array_equal(lin1.weight.detach().numpy(), before)
    extra = nn.Parameter(jg.ones(2))
    opt.add_param_group({"params": [extra], "lr": 1.0})
    extra.grad = jg.ones(2)  # a gradient the user assigned: copied into the arena
    opt.step()
    assert extra.tolist() == [0.0, 0.0]


def test_mixed_dtypes_and_rebound_data():
    a = nn.Parameter(jg.ones(2))
    b = nn.Parameter(jg.ones(2, dtype=jg.float64))
    opt = optim.SGD([a, b], lr=0.5)
    assert len(opt._arenas[0]) == 2
    a.data = jg.full((2,), 3.0)  # the user rebinds the data: step takes it back in
    a.grad, b.grad = jg.ones(2), jg.ones(2, dtype=jg.float64)
    opt.step()
    assert a.tolist() == [2.5, 2.5] and b.tolist() == [0.5, 0.5] and b.dtype is jg.float64
    a.data = jg.ones(3)
    with pytest.raises(RuntimeError, match="changed shape or dtype"):
        opt.step()


def test_closure_and_repr():
    p = nn.Parameter(jg.tensor([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    assert opt.step(closure).item() == 4.0 and p.item() == 1.0
    assert repr(opt).startswith("SGD (\nParameter Group 0\n    dampening: 0\n")


# --- state dicts ------------------------------------------------------------------------

def test_state_dict_roundtrip_resumes_training(tmp_path):
    def fresh():
        jg.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))

    x = jg.randn(8, 3)

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    for make in (lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True),
                 lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9)):
        model = fresh()
        opt = make(model.parameters())
        train(model, opt, 10)
        path = tmp_path / "ckpt"
        jg.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
        train(model, opt, 5)
        resumed = fresh()
        ropt = make(resumed.parameters())
        ckpt = jg.load(path)
        resumed.load_state_dict(ckpt["model"])
        ropt.load_state_dict(ckpt["opt"])
        train(resumed, ropt, 5)
        for a, b in zip(model.parameters(), resumed.parameters()):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_state_dict_layout_and_load_errors():
    lin = nn.Linear(2, 2)
    opt = optim.Adam(lin.parameters(), lr=0.1)
    sd = opt.state_dict()
    assert sd["state"] == {} and sd["param_groups"][0]["params"] == [0, 1]
    assert list(sd["param_groups"][0])[-1] == "params"
    other = optim.Adam([nn.Parameter(jg.ones(1))])
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        other.load_state_dict({"state": {}, "param_groups": []})
    sd["param_groups"][0]["lr"] = 0.5
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["params"][0] is lin.weight


OPT_ERRORS = [
    (lambda o, ps: o.SGD(ps, lr=-1), "ValueError: Invalid learning rate: -1"),
    (lambda o, ps: o.SGD(ps, lr=0.1, nesterov=True),
     "ValueError: Nesterov momentum requires a momentum and zero dampening"),
    (lambda o, ps: o.Adam(ps, betas=(1.0, 0.9)),
     "ValueError: Invalid beta parameter at index 0: 1.0"),
    (lambda o, ps: o.Adam(ps, eps=-1.0), "ValueError: Invalid epsilon value: -1.0"),
    (lambda o, ps: o.Adam([]), "ValueError: optimizer got an empty parameter list"),
    (lambda o, ps: o.Adam([{"params": ps[:1]}, {"params": ps[:1]}]),
     "ValueError: some parameters appear in more than one parameter group"),
    (lambda o, ps: o.Adam([ps[0] * 2]), "ValueError: can't optimize a non-leaf Tensor"),
]


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "no error"


@pytest.mark.parametrize("make, message", OPT_ERRORS)
def test_optimizer_errors(make, message):
    assert _error(lambda: make(optim, list(nn.Linear(2, 2).parameters()))) == message


@pytest.mark.parametrize("make, message", OPT_ERRORS)
def test_optimizer_errors_match_torch(make, message):
    torch = torch_or_skip()
    assert _error(lambda: make(torch.optim, list(torch.nn.Linear(2, 2).parameters()))) == message


# --- learning-rate schedules --------------------------------------------------------------------

SCHEDULES = [
    (lambda s, o: s.StepLR(o, step_size=7, gamma=0.5), 30),
    (lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 35),
    (lambda s, o: s.CosineAnnealingLR(o, T_max=4), 12),
]


def _lrs(lib, make, steps):
    opt = lib.optim.SGD([lib.nn.Parameter(lib.zeros(1))], lr=0.1)
    sched = make(lib.optim.lr_scheduler, opt)
    out = [sched.get_last_lr()[0]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == out[-1]
    return out


@pytest.mark.parametrize("make, steps", SCHEDULES)
def test_schedules_follow_their_closed_forms(make, steps):
    lrs = _lrs(jg, make, steps)
    opt = optim.SGD([nn.Parameter(jg.zeros(1))], lr=0.1)
    sched = make(lr_scheduler, opt)
    for epoch, lr in enumerate(lrs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched.step(epoch)
        assert sched.get_last_lr()[0] == pytest.approx(lr, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("make, steps", SCHEDULES)
def test_schedules_match_torch_exactly(make, steps):
    torch = torch_or_skip()
    assert _lrs(jg, make, steps) == _lrs(torch, make, steps)


def test_scheduler_warns_when_stepped_before_optimizer():
    opt = optim.SGD([nn.Parameter(jg.zeros(1))], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()
    assert sched.state_dict()["last_epoch"] == 1
