"""jitgrad.nn: BatchNorm1d/2d, Conv1d, ModuleDict, ParameterList/ParameterDict, Unflatten,
LeakyReLU, ELU and SiLU.

Each is checked against a float64 numpy reference (and ``gradcheck``); where PyTorch is
importable, values, gradients, running statistics, reprs, ``state_dict`` keys and error
messages are compared with it from identical weights.
"""
import collections

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.autograd import gradcheck
from jitgrad.nn import functional as F

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}




def torch_or_skip():
    return pytest.importorskip("torch")


def error_text(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "no error"


def copy_from_torch(torch_module, module):
    result = module.load_state_dict({k: jg.tensor(v.detach().numpy())
                                     for k, v in torch_module.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys


def np_of(t):
    return t.detach().numpy()


# --- BatchNorm ----------------------------------------------------------------------------

def ref_batch_norm(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        out = out * w.reshape(shape)
    if b is not None:
        out = out + b.reshape(shape)
    return out


BN_SHAPES = [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (2, 3, 4, 5))]
BN_OPTIONS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3),
              dict(affine=False), dict(track_running_stats=False), dict(bias=False)]
BN_IDS = ["-".join(f"{k}={v}" for k, v in o.items()) or "default" for o in BN_OPTIONS]


def bn_batches(shape, dtype, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * (k + 1) + k).astype(dtype) for k in range(n)]


@pytest.mark.parametrize("options", BN_OPTIONS, ids=BN_IDS)
@pytest.mark.parametrize("cls, shape", BN_SHAPES, ids=[f"{c}{s}" for c, s in BN_SHAPES])
def test_batch_norm_matches_numpy_reference(cls, shape, options):
    """Training steps then eval: outputs, running statistics (unbiased variance, momentum or
    a cumulative average) and the batch count follow PyTorch's definitions."""
    module = getattr(nn, cls)(3, dtype=jg.float64, **options)
    if module.weight is not None:
        with jg.no_grad():
            module.weight.copy_(jg.tensor([0.5, 2.0, -1.0], dtype=jg.float64))
            if module.bias is not None:
                module.bias.copy_(jg.tensor([0.1, -0.2, 0.3], dtype=jg.float64))
    w = None if module.weight is None else np_of(module.weight)
    b = None if module.bias is None else np_of(module.bias)
    eps, momentum = options.get("eps", 1e-5), options.get("momentum", 0.1)
    track = options.get("track_running_stats", True)
    mean, var = np.zeros(3), np.ones(3)
    dims = (0,) + tuple(range(2, len(shape)))
    batches = bn_batches(shape, np.float64)
    for step, x in enumerate(batches, 1):
        out = module(jg.tensor(x))
        bm, bv = x.mean(dims), x.var(dims)
        np.testing.assert_allclose(np_of(out), ref_batch_norm(x, bm, bv, w, b, eps),
                                   rtol=1e-12, atol=1e-12)
        n = x.size // 3
        factor = 1 / step if momentum is None else momentum
        mean = (1 - factor) * mean + factor * bm
        var = (1 - factor) * var + factor * bv * n / (n - 1)
        if track:
            np.testing.assert_allclose(np_of(module.running_mean), mean, rtol=1e-12)
            np.testing.assert_allclose(np_of(module.running_var), var, rtol=1e-12)
            assert module.num_batches_tracked.item() == step
            assert module.num_batches_tracked.dtype is jg.int64
        else:
            assert module.running_mean is None and module.num_batches_tracked is None
    module.eval()
    x = batches[0]
    want = ref_batch_norm(x, mean, var, w, b, eps) if track else \
        ref_batch_norm(x, x.mean(dims), x.var(dims), w, b, eps)
    np.testing.assert_allclose(np_of(module(jg.tensor(x))), want, rtol=1e-12, atol=1e-12)
    if track:
        assert module.num_batches_tracked.item() == len(batches)  # eval does not count


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", BN_OPTIONS, ids=BN_IDS)
@pytest.mark.parametrize("cls, shape", BN_SHAPES, ids=[f"{c}{s}" for c, s in BN_SHAPES])
def test_batch_norm_matches_torch(cls, shape, options, dtype):
    """Training steps then eval, from identical weights: outputs, the gradients of input,
    weight and bias, running statistics and the batch count at every step."""
    torch = torch_or_skip()
    theirs = getattr(torch.nn, cls)(3, dtype=getattr(torch, dtype), **options)
    ours = getattr(nn, cls)(3, dtype=getattr(jg, dtype), **options)
    if theirs.weight is not None:
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            if theirs.bias is not None:
                theirs.bias.uniform_(-1, 1)
    copy_from_torch(theirs, ours)
    batches = bn_batches(shape, dtype)
    for train, x in [(True, x) for x in batches] + [(False, batches[1])]:
        results = []
        for lib, module in ((torch, theirs), (jg, ours)):
            module.train(train)
            module.zero_grad()
            xt = lib.tensor(x, requires_grad=True)
            out = module(xt)
            (out * lib.tensor(np.linspace(-1, 2, out.numel()).reshape(shape).astype(dtype))) \
                .sum().backward()
            results.append([out, xt.grad] + [p.grad for p in module.parameters()] +
                           [b for b in module.buffers()])
        for t, j in zip(*results):
            np.testing.assert_allclose(np_of(j), np_of(t), **TOL[dtype])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    rng = np.random.default_rng(1)
    x = jg.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    w = jg.tensor(rng.standard_normal(2), requires_grad=True)
    b = jg.tensor(rng.standard_normal(2), requires_grad=True)
    mean, var = jg.tensor([0.3, -0.2], dtype=jg.float64), jg.tensor([1.5, 0.7], dtype=jg.float64)
    # no running statistics in training: gradcheck runs the function many times
    assert gradcheck(lambda x, w, b: F.batch_norm(
        x, None if training else mean, None if training else var, w, b, training), (x, w, b))


def test_running_stats_are_not_recorded_by_autograd():
    bn = nn.BatchNorm1d(3)
    x = jg.randn(5, 3, requires_grad=True)
    out = bn(x)
    assert out.grad_fn is not None
    for buf in (bn.running_mean, bn.running_var, bn.num_batches_tracked):
        assert buf.grad_fn is None and not buf.requires_grad
    out.sum().backward()
    assert x.grad is not None and bn.weight.grad is not None
    assert bn.running_mean.grad is None


def test_batch_norm_lazy_and_eager_agree():
    """A training step recorded in lazy mode updates the running statistics as eager
    mode does, and the next step sees the updated values."""
    batches = bn_batches((4, 3, 2, 2), np.float32)
    results = []
    for mode in ("eager", "lazy"):
        jg.set_mode(mode)
        bn = nn.BatchNorm2d(3, momentum=None)
        outs = []
        for x in batches:
            xt = jg.tensor(x, requires_grad=True)
            out = bn(xt)
            (out * out).sum().backward()
            outs.append(np_of(out))
            outs.append(xt.grad.numpy())
        bn.eval()
        outs += [np_of(bn(jg.tensor(batches[0]))), np_of(bn.running_mean),
                 np_of(bn.running_var), bn.weight.grad.numpy()]
        results.append(outs)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_batch_norm_state_dict_and_repr():
    bn = nn.BatchNorm2d(4)
    assert [(k, tuple(v.shape), v.dtype) for k, v in bn.state_dict().items()] == [
        ("weight", (4,), jg.float32), ("bias", (4,), jg.float32),
        ("running_mean", (4,), jg.float32), ("running_var", (4,), jg.float32),
        ("num_batches_tracked", (), jg.int64)]
    assert list(nn.BatchNorm1d(4, affine=False, track_running_stats=False).state_dict()) == []
    assert repr(bn) == ("BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, "
                        "track_running_stats=True)")
    assert repr(nn.BatchNorm1d(3, momentum=None, affine=False)) == (
        "BatchNorm1d(3, eps=1e-05, momentum=None, affine=False, bias=False, "
        "track_running_stats=True)")
    # a state_dict without the batch count loads (PyTorch's rule for old checkpoints)
    other = nn.BatchNorm2d(4)
    other(jg.randn(2, 4, 3, 3))
    state = {k: v for k, v in other.state_dict().items() if k != "num_batches_tracked"}
    assert repr(bn.load_state_dict(state)) == "<All keys matched successfully>"
    np.testing.assert_array_equal(np_of(bn.running_mean), np_of(other.running_mean))
    assert bn.num_batches_tracked.item() == 0
    assert "num_batches_tracked" not in state
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "running_var"'):
        bn.load_state_dict({k: v for k, v in state.items() if k != "running_var"})


def test_batch_norm_state_dict_matches_torch():
    torch = torch_or_skip()
    for options in BN_OPTIONS:
        for cls in ("BatchNorm1d", "BatchNorm2d"):
            ours, theirs = getattr(nn, cls)(5, **options), getattr(torch.nn, cls)(5, **options)
            assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
                [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
            assert repr(ours) == repr(theirs)


BN_ERRORS = [
    ("1d dims", lambda m, t: m.BatchNorm1d(3)(t.zeros(2, 3, 4, 5)),
     "ValueError: expected 2D or 3D input (got 4D input)"),
    ("2d dims", lambda m, t: m.BatchNorm2d(3)(t.zeros(2, 3, 4)),
     "ValueError: expected 4D input (got 3D input)"),
    ("channels", lambda m, t: m.BatchNorm1d(4)(t.zeros(2, 3)),
     "RuntimeError: running_mean should contain 3 elements not 4"),
    ("one value", lambda m, t: m.BatchNorm1d(3)(t.zeros(1, 3)),
     "ValueError: Expected more than 1 value per channel when training, got input size "
     "torch.Size([1, 3])"),
    ("eval without stats", lambda m, t: m.functional.batch_norm(t.zeros(2, 3), None, None),
     "RuntimeError: running_mean must be defined in evaluation mode"),
    ("weight size", lambda m, t: m.functional.batch_norm(t.zeros(2, 3), t.zeros(3), t.ones(3),
                                                          t.ones(4)),
     "RuntimeError: weight should contain 3 elements not 4"),
    ("eps", lambda m, t: m.functional.batch_norm(t.zeros(2, 3), None, None, training=True,
                                                 eps=0.0),
     "ValueError: batch_norm eps must be positive during training, but got 0.0"),
]


@pytest.mark.parametrize("name, make, message", BN_ERRORS, ids=[e[0] for e in BN_ERRORS])
def test_batch_norm_errors(name, make, message):
    assert error_text(lambda: make(nn, jg)) == message.replace("torch.", "jitgrad.")


@pytest.mark.parametrize("name, make, message", BN_ERRORS, ids=[e[0] for e in BN_ERRORS])
def test_batch_norm_errors_match_torch(name, make, message):
    torch = torch_or_skip()
    assert error_text(lambda: make(torch.nn, torch)) == message


# --- Conv1d -------------------------------------------------------------------------------

def ref_conv1d(x, w, b, stride, padding, dilation, groups):
    o, cg, k = w.shape
    if padding == "same":
        total = dilation * (k - 1)
        left, right = total // 2, total - total // 2
    else:
        left = right = 0 if padding == "valid" else padding
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    length = (xp.shape[2] - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], o, length))
    og = o // groups
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        for j in range(k):
            patch = xg[:, :, j * dilation: j * dilation + stride * (length - 1) + 1: stride]
            out[:, g * og:(g + 1) * og] += np.einsum("ncl,oc->nol", patch,
                                                     w[g * og:(g + 1) * og, :, j])
    return out if b is None else out + b[None, :, None]


CONV = [  # (in_channels, out_channels, kernel, stride, padding, dilation, groups, bias)
    (3, 4, 3, 1, 0, 1, 1, True),
    (3, 4, 3, 2, 1, 1, 1, True),
    (4, 6, 2, 1, "same", 1, 2, False),
    (3, 2, 4, 1, "same", 2, 1, True),
    (3, 2, 3, 1, "valid", 3, 1, True),
    (4, 4, 3, 3, 2, 2, 4, True),
    (2, 3, 1, 1, 0, 1, 1, False),
]
CONV_IDS = ["in{}-out{}-k{}-s{}-p{}-d{}-g{}-b{}".format(*c) for c in CONV]


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CONV, ids=CONV_IDS)
def test_conv1d_matches_numpy_reference(cin, cout, k, s, p, d, g, bias, batched):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, cin, 9))
    conv = nn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias,
                     dtype=jg.float64)
    out = conv(jg.tensor(x if batched else x[0]))
    want = ref_conv1d(x, np_of(conv.weight), None if conv.bias is None else np_of(conv.bias),
                      s, p, d, g)
    np.testing.assert_allclose(np_of(out), want if batched else want[0], rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CONV[1:4], ids=CONV_IDS[1:4])
def test_conv1d_gradcheck(cin, cout, k, s, p, d, g, bias):
    rng = np.random.default_rng(3)
    x = jg.tensor(rng.standard_normal((1, cin, 6)), requires_grad=True)
    w = jg.tensor(rng.standard_normal((cout, cin // g, k)), requires_grad=True)
    b = jg.tensor(rng.standard_normal(cout), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.conv1d(x, w, b if bias else None, s, p, d, g),
                     (x, w, b))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias", CONV, ids=CONV_IDS)
def test_conv1d_matches_torch(cin, cout, k, s, p, d, g, bias, dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, cin, 9)).astype(dtype)
    theirs = torch.nn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g,
                             bias=bias, dtype=getattr(torch, dtype))
    ours = nn.Conv1d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=bias,
                     dtype=getattr(jg, dtype))
    assert repr(ours) == repr(theirs)
    copy_from_torch(theirs, ours)
    results = []
    for lib, module in ((torch, theirs), (jg, ours)):
        xt = lib.tensor(x, requires_grad=True)
        out = module(xt)
        (out * out).sum().backward()
        results.append([out, xt.grad] + [q.grad for q in module.parameters()])
    for t, j in zip(*results):
        np.testing.assert_allclose(np_of(j), np_of(t), **TOL[dtype])


def test_conv1d_parameters_and_init():
    jg.manual_seed(0)
    conv = nn.Conv1d(4, 8, 5, groups=2)
    assert [(k, tuple(v.shape)) for k, v in conv.named_parameters()] == [
        ("weight", (8, 2, 5)), ("bias", (8,))]
    bound = 1 / np.sqrt(2 * 5)  # kaiming_uniform_(a=sqrt(5)) and the bias: 1/sqrt(fan_in)
    for p in conv.parameters():
        v = np_of(p)
        assert v.min() >= -bound and v.max() <= bound and v.max() - v.min() > bound
    assert repr(conv) == "Conv1d(4, 8, kernel_size=(5,), stride=(1,), groups=2)"
    assert repr(nn.Conv1d(2, 2, 3, padding="same", bias=False)) == (
        "Conv1d(2, 2, kernel_size=(3,), stride=(1,), padding=same, bias=False)")


CONV_ERRORS = [
    ("input dims", lambda m, t: m.functional.conv1d(t.zeros(4), t.zeros(2, 3, 1)),
     "RuntimeError: Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of "
     "size: [4]"),
    ("weight dims", lambda m, t: m.functional.conv1d(t.zeros(2, 3, 5), t.zeros(2, 3)),
     "RuntimeError: weight should have at least three dimensions"),
    ("channels", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 2, 1)),
     "RuntimeError: Given groups=1, weight of size [2, 2, 1], expected input[4, 3, 5] to have "
     "2 channels, but got 3 channels instead"),
    ("bias", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 1), t.zeros(3)),
     "RuntimeError: Given weight of size [2, 3, 1], expected bias to be 1-dimensional with 2 "
     "elements, but got bias of size [3] instead"),
    ("kernel", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 7)),
     "RuntimeError: Calculated padded input size per channel: (5). Kernel size: (7). Kernel "
     "size can't be greater than actual input size"),
    ("same strided", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2),
                                                      stride=2, padding="same"),
     "RuntimeError: padding='same' is not supported for strided convolutions"),
    ("stride", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2), stride=0),
     "RuntimeError: non-positive stride is not supported"),
    ("padding", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2),
                                                 padding=-1),
     "RuntimeError: negative padding is not supported"),
    ("padding string", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2),
                                                        padding="full"),
     "RuntimeError: Invalid padding string: 'full'"),
    ("dilation", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2),
                                                  dilation=0),
     "RuntimeError: non-positive dilation is not supported"),
    ("padding pair", lambda m, t: m.functional.conv1d(t.zeros(4, 3, 5), t.zeros(2, 3, 2),
                                                      padding=(1, 2)),
     "RuntimeError: expected padding to be a single integer value or a list of 1 values to "
     "match the convolution dimensions, but got padding=[1, 2]"),
    ("groups", lambda m, t: m.Conv1d(3, 4, 2, groups=2),
     "ValueError: in_channels must be divisible by groups"),
    ("module same strided", lambda m, t: m.Conv1d(3, 4, 2, stride=2, padding="same"),
     "ValueError: padding='same' is not supported for strided convolutions"),
]


@pytest.mark.parametrize("name, make, message", CONV_ERRORS, ids=[e[0] for e in CONV_ERRORS])
def test_conv1d_errors(name, make, message):
    assert error_text(lambda: make(nn, jg)) == message


@pytest.mark.parametrize("name, make, message", CONV_ERRORS, ids=[e[0] for e in CONV_ERRORS])
def test_conv1d_errors_match_torch(name, make, message):
    torch = torch_or_skip()
    assert error_text(lambda: make(torch.nn, torch)) == message


# --- containers ---------------------------------------------------------------------------

def module_dict(lib):
    d = lib.ModuleDict({"b": lib.Linear(2, 3), "a": lib.ReLU()})
    d["c"] = lib.Linear(3, 1)
    d.update([("d", lib.Tanh())])
    return d


def test_module_dict():
    d = module_dict(nn)
    assert list(d) == list(d.keys()) == ["b", "a", "c", "d"]  # insertion order, not sorted
    assert len(d) == 4 and "c" in d and "x" not in d
    assert isinstance(d["a"], nn.ReLU) and [type(m) for m in d.values()][-1] is nn.Tanh
    assert list(d.state_dict()) == ["b.weight", "b.bias", "c.weight", "c.bias"]
    popped = d.pop("c")
    assert isinstance(popped, nn.Linear) and list(d) == ["b", "a", "d"]
    assert [k for k, _ in d.named_parameters()] == ["b.weight", "b.bias"]
    del d["b"]
    assert list(d.parameters()) == []
    d.clear()
    assert len(d) == 0
    net = nn.Module()
    net.heads = nn.ModuleDict([("x", nn.Linear(2, 2))])
    assert list(net.state_dict()) == ["heads.x.weight", "heads.x.bias"]
    assert repr(net.heads) == "ModuleDict(\n  (x): Linear(in_features=2, out_features=2, " \
                              "bias=True)\n)"
    with pytest.raises(TypeError, match="ModuleDict.update should be called with an iterable"):
        d.update(3)
    with pytest.raises(ValueError, match="element #0 has length 1; 2 is required"):
        d.update([("x",)])


def parameter_list(lib):
    p = lib.ParameterList([lib.nn.Parameter(lib.ones(2, 3)), lib.zeros(3)])
    p.append(lib.ones(1, dtype=lib.float64))
    p.extend([lib.nn.Parameter(lib.zeros(2))])
    return p


def test_parameter_list():
    p = parameter_list(_Lib(jg))
    assert len(p) == 4
    assert all(isinstance(q, nn.Parameter) for q in p)  # tensors became parameters
    assert [tuple(q.shape) for q in p.parameters()] == [(2, 3), (3,), (1,), (2,)]
    assert list(p.state_dict()) == ["0", "1", "2", "3"]
    assert p[-1] is p[3] and [tuple(q.shape) for q in p[1:3]] == [(3,), (1,)]
    p[0] = jg.full((2,), 5.0)
    assert isinstance(p[0], nn.Parameter) and p[0].tolist() == [5.0, 5.0]
    with pytest.raises(IndexError, match="index 4 is out of range"):
        p[4]
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an "
                                        "iterable, but got Tensor"):
        p.extend(jg.zeros(2))
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        p(1)
    assert repr(p) == ("ParameterList(\n"
                       "    (0): Parameter containing: [jitgrad.float32 of size 2]\n"
                       "    (1): Parameter containing: [jitgrad.float32 of size 3]\n"
                       "    (2): Parameter containing: [jitgrad.float64 of size 1]\n"
                       "    (3): Parameter containing: [jitgrad.float32 of size 2]\n)")
    # the parameters train: an optimizer sees them through the parent module
    net = nn.Module()
    net.ws = nn.ParameterList([jg.ones(2)])
    opt = jg.optim.SGD(net.parameters(), lr=0.5)
    (net.ws[0] * 2).sum().backward()
    opt.step()
    assert net.ws[0].tolist() == [0.0, 0.0]


def parameter_dict(lib):
    d = lib.ParameterDict({"w": lib.ones(2, 3), "b": lib.nn.Parameter(lib.zeros(3))})
    d["a"] = lib.ones(1, dtype=lib.float64)
    d.update(collections.OrderedDict([("z", lib.zeros(1)), ("y", lib.zeros(2))]))
    return d


def test_parameter_dict():
    d = parameter_dict(_Lib(jg))
    # a plain dict goes in sorted; an OrderedDict keeps its order
    assert list(d) == ["b", "w", "a", "z", "y"]
    assert all(isinstance(v, nn.Parameter) for v in d.values())
    assert list(d.state_dict()) == ["b", "w", "a", "z", "y"]
    assert d.get("q") is None and "w" in d and len(d) == 5
    assert d.pop("z").shape == (1,) and "z" not in d
    key, value = d.popitem()
    assert key == "y" and value.shape == (2,)
    assert d.setdefault("n", jg.zeros(4)).shape == (4,)
    merged = d | nn.ParameterDict({"m": jg.ones(1)})
    assert list(merged) == ["b", "w", "a", "n", "m"] and list(d) == ["b", "w", "a", "n"]
    assert merged["w"] is d["w"]
    with pytest.raises(TypeError, match="Index given to ParameterDict cannot be used as a key"):
        d[0]
    assert repr(d) == ("ParameterDict(\n"
                       "    (b): Parameter containing: [jitgrad.FloatTensor of size 3]\n"
                       "    (w): Parameter containing: [jitgrad.FloatTensor of size 2x3]\n"
                       "    (a): Parameter containing: [jitgrad.DoubleTensor of size 1]\n"
                       "    (n): Parameter containing: [jitgrad.FloatTensor of size 4]\n)")
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


class _Lib:
    """``jitgrad`` or ``torch`` with ``nn``'s containers at the top, as the builders use."""

    def __init__(self, lib):
        self._lib = lib

    def __getattr__(self, name):
        return getattr(self._lib.nn if name.startswith(("Parameter", "Module")) else self._lib,
                       name)


def test_containers_match_torch():
    torch = torch_or_skip()
    for build in (module_dict, parameter_list, parameter_dict):
        ours = build(_Lib(jg) if build is not module_dict else nn)
        theirs = build(_Lib(torch) if build is not module_dict else torch.nn)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [tuple(v.shape) for v in ours.state_dict().values()] == \
            [tuple(v.shape) for v in theirs.state_dict().values()]
        assert repr(ours) == repr(theirs).replace("torch.", "jitgrad.")


# --- activations and Unflatten ------------------------------------------------------------

ACTIVATIONS = [
    ("LeakyReLU", dict(), lambda x: np.where(x > 0, x, 0.01 * x)),
    ("LeakyReLU", dict(negative_slope=0.3), lambda x: np.where(x > 0, x, 0.3 * x)),
    ("ELU", dict(), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    ("ELU", dict(alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    ("SiLU", dict(), lambda x: x / (1 + np.exp(-x))),
]
ACT_IDS = [f"{n}-{k}" for n, k, _ in ACTIVATIONS]
ACT_X = np.array([[-3.0, -1.0, -1e-3, 0.0, 0.5, 2.0], [100.0, -100.0, 1e-3, 3.0, -0.2, 0.7]])


@pytest.mark.parametrize("name, kwargs, ref", ACTIVATIONS, ids=ACT_IDS)
def test_activation_matches_numpy_reference(name, kwargs, ref):
    x = jg.tensor(ACT_X, requires_grad=True)
    out = getattr(nn, name)(**kwargs)(x)
    np.testing.assert_allclose(np_of(out), ref(ACT_X), rtol=1e-12, atol=1e-15)
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()  # no inf * 0 from a branch where() drops
    smooth = jg.tensor(ACT_X[:, [0, 1, 4, 5]] / 2, requires_grad=True)  # away from the kink
    assert gradcheck(getattr(nn, name)(**kwargs), (smooth,))


@pytest.mark.parametrize("name, kwargs, ref", ACTIVATIONS, ids=ACT_IDS)
def test_activation_inplace(name, kwargs, ref):
    leaf = jg.tensor(ACT_X, requires_grad=True)
    x = leaf * 1.5  # a non-leaf: in place is allowed, and the gradient flows back
    module = getattr(nn, name)(inplace=True, **kwargs)
    out = module(x)
    assert out is x
    np.testing.assert_allclose(np_of(x), ref(ACT_X * 1.5), rtol=1e-12, atol=1e-15)
    out.sum().backward()
    plain_leaf = jg.tensor(ACT_X, requires_grad=True)
    getattr(nn, name)(**kwargs)(plain_leaf * 1.5).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), plain_leaf.grad.numpy(), rtol=1e-12)
    text = error_text(lambda: module(jg.ones(2, requires_grad=True)))
    assert text == ("RuntimeError: a leaf Variable that requires grad is being used in an "
                    "in-place operation.")


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("name, kwargs, ref", ACTIVATIONS, ids=ACT_IDS)
def test_activation_matches_torch(name, kwargs, ref, inplace):
    torch = torch_or_skip()
    for dtype in ("float32", "float64"):
        results = []
        for lib in (torch, jg):
            module = getattr(lib.nn, name)(inplace=inplace, **kwargs)
            leaf = lib.tensor(ACT_X.astype(dtype), requires_grad=True)
            out = module(leaf * 1.0)
            (out * out).sum().backward()
            results.append((out, leaf.grad, repr(module)))
        (t_out, t_grad, t_repr), (out, grad, text) = results
        np.testing.assert_allclose(np_of(out), np_of(t_out), **TOL[dtype])
        np.testing.assert_allclose(grad.numpy(), t_grad.numpy(), **TOL[dtype])
        assert text == t_repr


def test_activation_reprs():
    assert [repr(m) for m in (nn.LeakyReLU(), nn.LeakyReLU(0.2, True), nn.ELU(),
                              nn.ELU(0.5, inplace=True), nn.SiLU(), nn.SiLU(True))] == [
        "LeakyReLU(negative_slope=0.01)", "LeakyReLU(negative_slope=0.2, inplace=True)",
        "ELU(alpha=1.0)", "ELU(alpha=0.5, inplace=True)", "SiLU()", "SiLU(inplace=True)"]


def test_unflatten():
    x = jg.arange(24.0).reshape(2, 12)
    assert tuple(nn.Unflatten(1, (3, 4))(x).shape) == (2, 3, 4)
    assert tuple(nn.Unflatten(-1, [2, -1, 3])(x).shape) == (2, 2, 2, 3)
    assert nn.Unflatten(1, (3, 4))(x).tolist() == np.arange(24.0).reshape(2, 3, 4).tolist()
    net = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (2, 6)))
    assert tuple(net(jg.zeros(5, 3, 4)).shape) == (5, 2, 6)
    assert repr(nn.Unflatten(1, (3, 4))) == "Unflatten(dim=1, unflattened_size=(3, 4))"


UNFLATTEN_ERRORS = [
    ("size type", lambda m, t: m.Unflatten(1, 6),
     "TypeError: unflattened_size must be a tuple of ints, but found type int"),
    ("element type", lambda m, t: m.Unflatten(1, (2, 3.0)),
     "TypeError: unflattened_size must be tuple of ints, but found element of type float at "
     "pos 1"),
    ("product", lambda m, t: m.Unflatten(1, (4, 2))(t.zeros(2, 6)),
     "RuntimeError: unflatten: Provided sizes [4, 2] don't multiply up to the size of dim 1 "
     "(6) in the input tensor"),
    ("product with -1", lambda m, t: m.Unflatten(1, (4, -1))(t.zeros(2, 6)),
     "RuntimeError: unflatten: Provided sizes [4, -1] don't multiply up to the size of dim 1 "
     "(6) in the input tensor"),
]


@pytest.mark.parametrize("name, make, message", UNFLATTEN_ERRORS,
                         ids=[e[0] for e in UNFLATTEN_ERRORS])
def test_unflatten_errors(name, make, message):
    assert error_text(lambda: make(nn, jg)) == message


@pytest.mark.parametrize("name, make, message", UNFLATTEN_ERRORS,
                         ids=[e[0] for e in UNFLATTEN_ERRORS])
def test_unflatten_errors_match_torch(name, make, message):
    torch = torch_or_skip()
    assert error_text(lambda: make(torch.nn, torch)) == message
