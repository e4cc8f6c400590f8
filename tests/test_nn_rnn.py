"""jitgrad.nn recurrent layers: RNN, LSTM, GRU and their cells.

Forward values are checked against a float64 numpy reference and gradients by
``gradcheck``; where PyTorch is importable, outputs and every gradient from identical
weights are compared with it (float32 within rounding, float64 tightly), as are
parameter names, shapes, reprs, error messages and an SGD training trajectory.
"""
import sys

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.autograd import gradcheck

KINDS = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
TOL = {"float32": dict(rtol=1e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}




def torch_or_skip():
    return pytest.importorskip("torch")


def error_text(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "no error"


def build(lib, kind, *args, **kwargs):
    """``kind``'s module from ``lib`` (jitgrad.nn or torch.nn)."""
    if kind.startswith("RNN_"):
        return lib.RNN(*args, nonlinearity=kind[4:].lower(), **kwargs)
    return getattr(lib, kind)(*args, **kwargs)


def copy_from_torch(torch_module, module):
    """Load the torch module's weights into the jitgrad one (same keys, same dtype)."""
    result = module.load_state_dict({k: jg.tensor(v.detach().numpy())
                                     for k, v in torch_module.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys


def params_np(module):
    return {k: v.detach().numpy().astype(np.float64) for k, v in module.named_parameters()}


# --- float64 numpy reference ----------------------------------------------------------------

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_step(kind, p, sfx, x, h, c):
    gi = x @ p["weight_ih" + sfx].T + p.get("bias_ih" + sfx, 0)
    gh = h @ p["weight_hh" + sfx].T + p.get("bias_hh" + sfx, 0)
    if kind == "LSTM":
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        if "weight_hr" + sfx in p:
            h = h @ p["weight_hr" + sfx].T
        return h, c
    if kind == "GRU":
        ir, iz, in_ = np.split(gi, 3, axis=1)
        hr, hz, hn = np.split(gh, 3, axis=1)
        r, z = sigmoid(ir + hr), sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        return (1 - z) * n + z * h, None
    s = gi + gh
    return (np.tanh(s) if kind == "RNN_TANH" else np.maximum(s, 0)), None


def ref_rnn(kind, p, x, h0, c0, num_layers, directions):
    """Time-major ``x`` (T, N, I): (output, h_n, c_n) as PyTorch defines them."""
    finals_h, finals_c = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(directions):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            h = h0[layer * directions + d]
            c = c0[layer * directions + d] if c0 is not None else None
            seq = [None] * len(x)
            for t in (range(len(x) - 1, -1, -1) if d else range(len(x))):
                h, c = ref_step(kind, p, sfx, x[t], h, c)
                seq[t] = h
            outs.append(np.stack(seq))
            finals_h.append(h)
            finals_c.append(c)
        x = np.concatenate(outs, 2)
    return x, np.stack(finals_h), (np.stack(finals_c) if c0 is not None else None)


def run(module, x, state):
    """(output, h_n, c_n or None) from a jitgrad or torch module."""
    out, hidden = module(x, state) if state is not None else module(x)
    if isinstance(hidden, tuple):
        return out, hidden[0], hidden[1]
    return out, hidden, None


# configurations each kind runs with (hx: whether an initial state is given)
CONFIGS = [
    dict(hx=False),
    dict(hx=True),
    dict(num_layers=2, hx=True),
    dict(bias=False, hx=False),
    dict(batch_first=True, hx=True),
    dict(bidirectional=True, hx=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, hx=True),
]
IDS = ["-".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]
T, N, I, H = 4, 3, 3, 5


def inputs(kind, config, dtype, rng, unbatched=False, proj_size=0):
    """Numpy input and initial state for ``config`` (None where no state is given)."""
    d = 2 if config.get("bidirectional") else 1
    layers = config.get("num_layers", 1)
    shape = (T, I) if unbatched else ((N, T, I) if config.get("batch_first") else (T, N, I))
    x = rng.standard_normal(shape).astype(dtype)
    if not config["hx"]:
        return x, None
    batch = () if unbatched else (N,)
    h0 = rng.standard_normal((layers * d,) + batch + (proj_size or H,)).astype(dtype)
    c0 = rng.standard_normal((layers * d,) + batch + (H,)).astype(dtype)
    return x, ((h0, c0) if kind == "LSTM" else h0)


def module_kwargs(config):
    return {k: v for k, v in config.items() if k != "hx"}


def to_lib(lib, state, requires_grad):
    """``state`` (an array, a pair of arrays or None) as tensors of ``lib``."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(to_lib(lib, s, requires_grad) for s in state)
    return lib.tensor(state, requires_grad=requires_grad)


# --- parameters, init, repr ---------------------------------------------------------------

def test_parameter_names_and_shapes():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert [(k, tuple(v.shape)) for k, v in lstm.state_dict().items()] == [
        ("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 4)), ("bias_ih_l0", (16,)),
        ("bias_hh_l0", (16,)),
        ("weight_ih_l0_reverse", (16, 3)), ("weight_hh_l0_reverse", (16, 4)),
        ("bias_ih_l0_reverse", (16,)), ("bias_hh_l0_reverse", (16,)),
        ("weight_ih_l1", (16, 8)), ("weight_hh_l1", (16, 4)), ("bias_ih_l1", (16,)),
        ("bias_hh_l1", (16,)),
        ("weight_ih_l1_reverse", (16, 8)), ("weight_hh_l1_reverse", (16, 4)),
        ("bias_ih_l1_reverse", (16,)), ("bias_hh_l1_reverse", (16,))]
    gru = nn.GRU(3, 4, bias=False)
    assert [(k, tuple(v.shape)) for k, v in gru.named_parameters()] == [
        ("weight_ih_l0", (12, 3)), ("weight_hh_l0", (12, 4))]
    cell = nn.RNNCell(3, 4, bias=False)
    assert [k for k, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
    assert cell.bias_ih is None and cell.bias_hh is None
    assert [[tuple(p.shape) for p in ps] for ps in nn.LSTM(2, 3, proj_size=1).all_weights] == [
        [(12, 2), (12, 1), (12,), (12,), (1, 3)]]


@pytest.mark.parametrize("kind", KINDS + ["LSTMCell", "GRUCell", "RNNCell"])
def test_parameter_names_and_shapes_match_torch(kind):
    torch = torch_or_skip()
    for kwargs in ([dict()] if kind.endswith("Cell") else
                   [dict(num_layers=3, bidirectional=True), dict(bias=False)]):
        if kind.endswith("Cell"):
            ours, theirs = getattr(nn, kind)(3, 4), getattr(torch.nn, kind)(3, 4)
        else:
            ours, theirs = build(nn, kind, 3, 4, **kwargs), build(torch.nn, kind, 3, 4, **kwargs)
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
            [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]


@pytest.mark.parametrize("make", [lambda: nn.LSTM(3, 16, 2, bidirectional=True),
                                  lambda: nn.GRUCell(5, 16, dtype=jg.float64)],
                         ids=["LSTM", "GRUCell"])
def test_init_is_uniform_in_one_over_sqrt_hidden(make):
    jg.manual_seed(0)
    values = np.concatenate([p.detach().numpy().ravel() for p in make().parameters()])
    bound = 1 / np.sqrt(16)
    assert values.min() >= -bound and values.max() <= bound
    # a uniform sample of this size spans the interval, with the uniform's spread
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound


REPRS = [
    (lambda m: m.LSTM(3, 4, 2, dropout=0.5, bidirectional=True, batch_first=True, bias=False),
     "LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)"),
    (lambda m: m.RNN(3, 4, nonlinearity="relu"), "RNN(3, 4)"),
    (lambda m: m.GRU(3, 4), "GRU(3, 4)"),
    (lambda m: m.LSTM(3, 4, proj_size=2), "LSTM(3, 4, proj_size=2)"),
    (lambda m: m.GRUCell(3, 4, bias=False), "GRUCell(3, 4, bias=False)"),
    (lambda m: m.RNNCell(3, 4, nonlinearity="relu"), "RNNCell(3, 4, nonlinearity=relu)"),
    (lambda m: m.LSTMCell(3, 4), "LSTMCell(3, 4)"),
]


@pytest.mark.parametrize("make, text", REPRS, ids=[r[1] for r in REPRS])
def test_repr(make, text):
    assert repr(make(nn)) == text


@pytest.mark.parametrize("make, text", REPRS, ids=[r[1] for r in REPRS])
def test_repr_matches_torch(make, text):
    torch = torch_or_skip()
    assert repr(make(torch.nn)) == text


# --- forward and gradients ------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_matches_numpy_reference(kind, config):
    rng = np.random.default_rng(1)
    module = build(nn, kind, I, H, dtype=jg.float64, **module_kwargs(config))
    x, state = inputs(kind, config, np.float64, rng)
    out, h_n, c_n = run(module, jg.tensor(x), to_lib(jg, state, False))
    d = 2 if config.get("bidirectional") else 1
    layers = config.get("num_layers", 1)
    xt = x.transpose(1, 0, 2) if config.get("batch_first") else x
    if state is None:
        h0 = np.zeros((layers * d, N, H))
        c0 = h0 if kind == "LSTM" else None
    else:
        h0, c0 = state if kind == "LSTM" else (state, None)
    ref_out, ref_h, ref_c = ref_rnn(kind, params_np(module), xt, h0, c0, layers, d)
    if config.get("batch_first"):
        ref_out = ref_out.transpose(1, 0, 2)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=1e-12, atol=1e-12)
    if kind == "LSTM":
        np.testing.assert_allclose(c_n.detach().numpy(), ref_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind):
    """Gradients for the input, the initial state and every parameter of a small
    two-layer bidirectional module, against central differences."""
    jg.manual_seed(0)
    module = build(nn, kind, 2, 2, num_layers=2, bidirectional=True, dtype=jg.float64)
    rng = np.random.default_rng(2)
    x = jg.tensor(rng.standard_normal((3, 1, 2)), requires_grad=True)
    h0 = jg.tensor(rng.standard_normal((4, 1, 2)), requires_grad=True)
    c0 = jg.tensor(rng.standard_normal((4, 1, 2)), requires_grad=True)
    params = list(module.parameters())

    def f(x, h0, c0, *_):
        out, h_n, c_n = run(module, x, (h0, c0) if kind == "LSTM" else h0)
        return (out, h_n) + ((c_n,) if kind == "LSTM" else ())

    assert gradcheck(f, (x, h0, c0, *params))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch(kind, config, dtype):
    """Outputs, final states and the gradients of the input, the initial state and every
    parameter, from identical weights."""
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    kwargs = module_kwargs(config)
    theirs = build(torch.nn, kind, I, H, dtype=getattr(torch, dtype), **kwargs)
    ours = build(nn, kind, I, H, dtype=getattr(jg, dtype), **kwargs)
    copy_from_torch(theirs, ours)
    x, state = inputs(kind, config, dtype, rng)
    results = []
    for lib, module in ((torch, theirs), (jg, ours)):
        xt, st = lib.tensor(x, requires_grad=True), to_lib(lib, state, True)
        out, h_n, c_n = run(module, xt, st)
        # fixed random weights on every output, so that every gradient is nontrivial
        loss = (out * lib.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape)
                                 .astype(dtype))).sum() + (h_n * h_n).sum()
        if c_n is not None:
            loss = loss + (c_n * 0.5).sum()
        loss.backward()
        states = [] if st is None else (list(st) if isinstance(st, tuple) else [st])
        results.append([out, h_n] + ([c_n] if c_n is not None else []) + [xt.grad] +
                       [s.grad for s in states] + [p.grad for p in module.parameters()])
    for t, j in zip(*results):
        np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), **TOL[dtype])


@pytest.mark.parametrize("hx", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input(kind, hx):
    """An unbatched ``(L, H_in)`` sequence gives what the same sequence as a batch of one
    gives, without the batch dim (and agrees with torch)."""
    rng = np.random.default_rng(4)
    module = build(nn, kind, I, H, num_layers=2, batch_first=True, dtype=jg.float64)
    x, state = inputs(kind, dict(hx=hx, num_layers=2), np.float64, rng, unbatched=True)
    out, h_n, c_n = run(module, jg.tensor(x), to_lib(jg, state, False))
    assert tuple(out.shape) == (T, H) and tuple(h_n.shape) == (2, H)
    batched_state = None if state is None else (
        tuple(s[:, None] for s in state) if kind == "LSTM" else state[:, None])
    bout, bh, bc = run(module, jg.tensor(x[None]), to_lib(jg, batched_state, False))
    np.testing.assert_array_equal(out.detach().numpy(), bout.detach().numpy()[0])
    np.testing.assert_array_equal(h_n.detach().numpy(), bh.detach().numpy()[:, 0])
    if kind == "LSTM":
        np.testing.assert_array_equal(c_n.detach().numpy(), bc.detach().numpy()[:, 0])
    torch = sys.modules.get("torch")
    if torch is None:
        return
    theirs = build(torch.nn, kind, I, H, num_layers=2, batch_first=True, dtype=torch.float64)
    copy_from_torch(theirs, module)
    out, h_n, _ = run(module, jg.tensor(x), to_lib(jg, state, False))
    tout, th, _ = run(theirs, torch.tensor(x), to_lib(torch, state, False))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), **TOL["float64"])
    np.testing.assert_allclose(h_n.detach().numpy(), th.detach().numpy(), **TOL["float64"])


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_proj_size_matches_torch(dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    config = dict(num_layers=2, bidirectional=True, hx=True)
    theirs = torch.nn.LSTM(I, H, proj_size=2, dtype=getattr(torch, dtype),
                           **module_kwargs(config))
    ours = nn.LSTM(I, H, proj_size=2, dtype=getattr(jg, dtype), **module_kwargs(config))
    copy_from_torch(theirs, ours)
    x, state = inputs("LSTM", config, dtype, rng, proj_size=2)
    results = []
    for lib, module in ((torch, theirs), (jg, ours)):
        out, h_n, c_n = run(module, lib.tensor(x), to_lib(lib, state, True))
        (out.sum() + (h_n * c_n[..., :2]).sum()).backward()
        results.append([out, h_n, c_n] + [p.grad for p in module.parameters()])
    assert tuple(results[1][1].shape) == (4, N, 2)
    for t, j in zip(*results):
        np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), **TOL[dtype])


def test_lstm_proj_size_matches_numpy_reference():
    rng = np.random.default_rng(6)
    module = nn.LSTM(I, H, proj_size=2, dtype=jg.float64)
    x = rng.standard_normal((T, N, I))
    out, (h_n, c_n) = module(jg.tensor(x))
    ref_out, ref_h, ref_c = ref_rnn("LSTM", params_np(module), x, np.zeros((1, N, 2)),
                                    np.zeros((1, N, H)), 1, 1)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c_n.detach().numpy(), ref_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_lazy_and_eager_agree(kind):
    """The same forward and backward in both modes: identical values and gradients."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    jg.manual_seed(0)
    module = build(nn, kind, I, H, num_layers=2, bidirectional=True)
    results = []
    for mode in ("eager", "lazy"):
        jg.set_mode(mode)
        module.zero_grad()
        xt = jg.tensor(x, requires_grad=True)
        out, h_n, _ = run(module, xt, None)
        (out.sum() + h_n.sum()).backward()
        results.append([out.detach().numpy(), h_n.detach().numpy(), xt.grad.numpy()] +
                       [p.grad.numpy() for p in module.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --- dropout between layers ---------------------------------------------------------------

def test_dropout_applies_between_layers_in_training_only():
    rng = np.random.default_rng(8)
    x = jg.tensor(rng.standard_normal((T, N, I)))
    jg.manual_seed(0)
    module = nn.GRU(I, H, num_layers=2, dropout=0.5, dtype=jg.float64)
    plain = nn.GRU(I, H, num_layers=2, dtype=jg.float64)
    plain.load_state_dict(module.state_dict())
    expected = plain(x)[0].detach().numpy()
    module.eval()
    np.testing.assert_array_equal(module(x)[0].detach().numpy(), expected)
    module.train()
    jg.manual_seed(1)
    first = module(x)[0].detach().numpy()
    jg.manual_seed(1)
    again = module(x)[0].detach().numpy()
    np.testing.assert_array_equal(first, again)  # the mask comes from the seeded generator
    assert not np.allclose(first, expected)
    # the first layer's outputs are not dropped: a one-layer module ignores dropout
    one = nn.GRU(I, H, dtype=jg.float64)
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        one_dropped = nn.GRU(I, H, dropout=0.5, dtype=jg.float64)
    one_dropped.load_state_dict(one.state_dict())
    np.testing.assert_array_equal(one_dropped(x)[0].detach().numpy(),
                                  one(x)[0].detach().numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_one_zeroes_the_next_layers_input(kind):
    """With ``dropout=1`` the second layer sees zeros: its output is what it gives for a
    zero input (numpy reference; torch gives the same)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, N, I))
    module = build(nn, kind, I, H, num_layers=2, dropout=1.0, dtype=jg.float64)
    out, h_n, _ = run(module, jg.tensor(x), None)
    p = params_np(module)
    second = {k.replace("_l1", "_l0"): v for k, v in p.items() if "_l1" in k}
    zeros_state = np.zeros((1, N, H))
    ref_out, _, _ = ref_rnn(kind, second, np.zeros((T, N, H)), zeros_state,
                            zeros_state if kind == "LSTM" else None, 1, 1)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    torch = sys.modules.get("torch")
    if torch is not None:
        theirs = build(torch.nn, kind, I, H, num_layers=2, dropout=1.0, dtype=torch.float64)
        copy_from_torch(theirs, module)
        np.testing.assert_allclose(run(module, jg.tensor(x), None)[0].detach().numpy(),
                                   run(theirs, torch.tensor(x), None)[0].detach().numpy(),
                                   **TOL["float64"])


# --- cells --------------------------------------------------------------------------------

CELLS = [("RNNCell", dict()), ("RNNCell", dict(nonlinearity="relu")), ("LSTMCell", dict()),
         ("GRUCell", dict()), ("GRUCell", dict(bias=False))]
CELL_IDS = [f"{c}-{k}" for c, k in CELLS]


def cell_inputs(cls, rng, dtype, batched, hx):
    x = rng.standard_normal((N, I) if batched else (I,)).astype(dtype)
    if not hx:
        return x, None
    h = rng.standard_normal((N, H) if batched else (H,)).astype(dtype)
    if cls == "LSTMCell":
        return x, (h, rng.standard_normal(h.shape).astype(dtype))
    return x, h


def cell_kind(cls, kwargs):
    return {"LSTMCell": "LSTM", "GRUCell": "GRU"}.get(
        cls, "RNN_RELU" if kwargs.get("nonlinearity") == "relu" else "RNN_TANH")


@pytest.mark.parametrize("batched, hx", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
def test_cell_matches_numpy_reference(cls, kwargs, batched, hx):
    rng = np.random.default_rng(10)
    cell = getattr(nn, cls)(I, H, dtype=jg.float64, **kwargs)
    x, state = cell_inputs(cls, rng, np.float64, batched, hx)
    out = cell(jg.tensor(x), to_lib(jg, state, False))
    p = {k + "_l0": v for k, v in params_np(cell).items()}
    h = np.zeros((N, H)) if state is None else (state[0] if cls == "LSTMCell" else state)
    c = None if cls != "LSTMCell" else (np.zeros((N, H)) if state is None else state[1])
    rh, rc = ref_step(cell_kind(cls, kwargs), p, "_l0", np.atleast_2d(x), np.atleast_2d(h),
                      None if c is None else np.atleast_2d(c))
    got = out if cls == "LSTMCell" else (out,)
    want = (rh, rc) if cls == "LSTMCell" else (rh,)
    for g, w in zip(got, want):
        assert tuple(g.shape) == ((N, H) if batched else (H,))
        np.testing.assert_allclose(g.detach().numpy(), w if batched else w[0], rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
def test_cell_gradcheck(cls, kwargs):
    rng = np.random.default_rng(11)
    cell = getattr(nn, cls)(2, 3, dtype=jg.float64, **kwargs)
    x = jg.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    h = jg.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    c = jg.tensor(rng.standard_normal((2, 3)), requires_grad=True)

    def f(x, h, c, *_):
        return cell(x, (h, c)) if cls == "LSTMCell" else cell(x, h)

    assert gradcheck(f, (x, h, c, *cell.parameters()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batched, hx", [(True, True), (True, False), (False, True),
                                         (False, False)])
@pytest.mark.parametrize("cls, kwargs", CELLS, ids=CELL_IDS)
def test_cell_matches_torch(cls, kwargs, batched, hx, dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(12)
    theirs = getattr(torch.nn, cls)(I, H, dtype=getattr(torch, dtype), **kwargs)
    ours = getattr(nn, cls)(I, H, dtype=getattr(jg, dtype), **kwargs)
    copy_from_torch(theirs, ours)
    x, state = cell_inputs(cls, rng, dtype, batched, hx)
    results = []
    for lib, module in ((torch, theirs), (jg, ours)):
        xt, st = lib.tensor(x, requires_grad=True), to_lib(lib, state, True)
        out = module(xt, st)
        outs = out if isinstance(out, tuple) else (out,)
        loss = (outs[0] * outs[0]).sum()
        if len(outs) > 1:
            loss = loss + outs[1].sum() * 0.5
        loss.backward()
        states = [] if st is None else (list(st) if isinstance(st, tuple) else [st])
        results.append(list(outs) + [xt.grad] + [s.grad for s in states] +
                       [p.grad for p in module.parameters()])
    for t, j in zip(*results):
        np.testing.assert_allclose(j.detach().numpy(), t.detach().numpy(), **TOL[dtype])


# --- errors ---------------------------------------------------------------------------------

ERRORS = [
    ("input dims", lambda m, t: m.LSTM(3, 4)(t.zeros(1, 2, 3, 3)),
     "ValueError: LSTM: Expected input to be 2D or 3D, got 4D instead"),
    ("rnn input dims", lambda m, t: m.RNN(3, 4)(t.zeros(3)),
     "ValueError: RNN: Expected input to be 2D or 3D, got 1D tensor instead"),
    ("input size", lambda m, t: m.GRU(3, 4)(t.zeros(5, 2, 2)),
     "RuntimeError: input.size(-1) must be equal to input_size. Expected 3, got 2"),
    ("hidden size", lambda m, t: m.GRU(3, 4)(t.zeros(5, 2, 3), t.zeros(1, 2, 5)),
     "RuntimeError: Expected hidden size (1, 2, 4), got [1, 2, 5]"),
    ("hidden batched", lambda m, t: m.RNN(3, 4)(t.zeros(5, 2, 3), t.zeros(2, 4)),
     "RuntimeError: For batched 3-D input, hx should also be 3-D but got 2-D tensor"),
    ("hidden unbatched", lambda m, t: m.GRU(3, 4)(t.zeros(5, 3), t.zeros(1, 2, 4)),
     "RuntimeError: For unbatched 2-D input, hx should also be 2-D but got 3-D tensor"),
    ("lstm cell size", lambda m, t: m.LSTM(3, 4)(t.zeros(5, 2, 3),
                                                 (t.zeros(1, 2, 4), t.zeros(1, 2, 3))),
     "RuntimeError: Expected hidden[1] size (1, 2, 4), got [1, 2, 3]"),
    ("lstm hx dims", lambda m, t: m.LSTM(3, 4)(t.zeros(5, 2, 3), (t.zeros(2, 4), t.zeros(2, 4))),
     "RuntimeError: For batched 3-D input, hx and cx should also be 3-D but got (2-D, 2-D) "
     "tensors"),
    ("dropout range", lambda m, t: m.LSTM(3, 4, dropout=1.5),
     "ValueError: dropout should be a number in range [0, 1] representing the probability of "
     "an element being zeroed"),
    ("hidden size zero", lambda m, t: m.GRU(3, 0),
     "ValueError: hidden_size must be greater than zero"),
    ("num layers", lambda m, t: m.GRU(3, 4, 0),
     "ValueError: num_layers must be greater than zero"),
    ("proj too big", lambda m, t: m.LSTM(3, 4, proj_size=4),
     "ValueError: proj_size has to be smaller than hidden_size"),
    ("proj gru", lambda m, t: m.GRU(3, 4, proj_size=2),
     "ValueError: proj_size argument is only supported for LSTM, not RNN or GRU"),
    ("nonlinearity", lambda m, t: m.RNN(3, 4, nonlinearity="gelu"),
     "ValueError: Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'."),
    ("bias type", lambda m, t: m.RNN(3, 4, bias=1),
     "TypeError: bias should be of type bool, got: int"),
    ("cell input", lambda m, t: m.GRUCell(3, 4)(t.zeros(1, 2, 3)),
     "ValueError: GRUCell: Expected input to be 1D or 2D, got 3D instead"),
    ("cell hidden", lambda m, t: m.RNNCell(3, 4)(t.zeros(2, 3), t.zeros(1, 2, 4)),
     "ValueError: RNNCell: Expected hidden to be 1D or 2D, got 3D instead"),
    ("lstm cell hx", lambda m, t: m.LSTMCell(3, 4)(t.zeros(2, 3),
                                                   (t.zeros(2, 4), t.zeros(1, 2, 4))),
     "ValueError: LSTMCell: Expected hx[1] to be 1D or 2D, got 3D instead"),
]


@pytest.mark.parametrize("name, make, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages(name, make, message):
    assert error_text(lambda: make(nn, jg)) == message


@pytest.mark.parametrize("name, make, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages_match_torch(name, make, message):
    torch = torch_or_skip()
    assert error_text(lambda: make(torch.nn, torch)) == message


def test_dtype_mismatch_error():
    text = error_text(lambda: nn.LSTM(3, 4)(jg.zeros(2, 1, 3, dtype=jg.float64)))
    assert text == ("ValueError: RNN input dtype (jitgrad.float64) does not match weight dtype "
                    "(jitgrad.float32). Convert input: input.to(jitgrad.float32), or convert "
                    "model: model.to(jitgrad.float64)")
    torch = sys.modules.get("torch")
    if torch is not None:
        theirs = error_text(lambda: torch.nn.LSTM(3, 4)(torch.zeros(2, 1, 3,
                                                                    dtype=torch.float64)))
        assert theirs == text.replace("jitgrad.", "torch.")


# --- training -------------------------------------------------------------------------------

def lstm_trajectory(lib, lstm, head, x, y, steps=8):
    params = list(lstm.parameters()) + list(head.parameters())
    opt = lib.optim.SGD(params, lr=0.5)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out, _ = lstm(x)
        loss = ((head(out[-1]) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, params


def training_data():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    return x, np.tanh(x.sum((0, 2)))[:, None].astype(np.float32)


def test_lstm_training_follows_torch():
    """A few SGD steps from the same weights: the same loss at every step, the same
    final weights."""
    torch = torch_or_skip()
    x, y = training_data()
    torch.manual_seed(0)
    t_lstm, t_head = torch.nn.LSTM(3, 8, num_layers=2), torch.nn.Linear(8, 1)
    lstm, head = nn.LSTM(3, 8, num_layers=2), nn.Linear(8, 1)
    copy_from_torch(t_lstm, lstm)
    copy_from_torch(t_head, head)
    theirs, t_params = lstm_trajectory(torch, t_lstm, t_head, torch.tensor(x), torch.tensor(y))
    ours, params = lstm_trajectory(jg, lstm, head, jg.tensor(x), jg.tensor(y))
    assert theirs[-1] < 0.5 * theirs[0]  # it learns, so the comparison means something
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for p, q in zip(params, t_params):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_lstm_training_same_in_both_modes():
    x, y = training_data()
    runs = []
    for mode in ("eager", "lazy"):
        jg.set_mode(mode)
        jg.manual_seed(0)
        lstm, head = nn.LSTM(3, 8, num_layers=2), nn.Linear(8, 1)
        runs.append(lstm_trajectory(jg, lstm, head, jg.tensor(x), jg.tensor(y))[0])
    assert runs[0][-1] < 0.5 * runs[0][0]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5)
