"""jitgrad.nn: modules, layers, losses, init.

Every layer's forward is checked against a float64 numpy reference and its
gradients by ``gradcheck`` (central differences in float64); where PyTorch is
importable, forward and gradients from identical weights are compared with
it too, as are reprs, ``state_dict`` keys and error messages.
"""
import collections
import math

import numpy as np
import pytest
from scipy.special import erf

import jitgrad as jg
from jitgrad import nn
from jitgrad.autograd import gradcheck, gradgradcheck
from jitgrad.nn import functional as F

RNG = np.random.default_rng(0)


def f64(*shape):
    return jg.tensor(RNG.standard_normal(shape), dtype=jg.float64, requires_grad=True)


def torch_or_skip():
    return pytest.importorskip("torch")


def error_text(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return "no error"


# --- float64 numpy references ---------------------------------------------------------------

def ref_conv2d(x, w, b, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, c, kh, kw = w.shape
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            patch = xp[:, :, rows, cols]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def ref_pool(x, k, s, p, reduce, pad_value):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return reduce(win, axis=(-2, -1))


def ref_log_softmax(x):
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


# --- Module -----------------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.register_buffer("running", jg.zeros(2))
        self.register_buffer("scratch", jg.zeros(1), persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        self.scale = nn.Parameter(jg.ones(1))

    def forward(self, x):
        return self.head(self.conv(x)) * self.scale


def test_registration_order_and_traversal():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "conv.weight", "conv.bias", "head.1.weight", "head.1.bias"]
    assert list(net.state_dict()) == ["scale", "running", "conv.weight", "conv.bias",
                                      "head.1.weight", "head.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["running", "scratch"]
    assert [n for n, _ in net.named_children()] == ["conv", "head"]
    assert [n for n, _ in net.named_modules()] == ["", "conv", "head", "head.0", "head.1"]
    assert len(list(net.parameters())) == 5 and len(list(net.modules())) == 5
    assert net.get_submodule("head.1") is net.head[1]
    assert net(jg.randn(2, 1, 6, 6)).shape == (2, 3)


def test_shared_parameters_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_parameter_is_a_leaf_tensor_sharing_storage():
    t = jg.ones(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, jg.Tensor) and p.requires_grad and p.is_leaf and p.grad_fn is None
    assert np.shares_memory(p.detach().numpy(), t.numpy())
    assert repr(p) == str(p) == ("Parameter containing:\ntensor([[1., 1., 1.],\n"
                                 "        [1., 1., 1.]], requires_grad=True)")
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert type(p * 2) is jg.Tensor
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(jg.tensor([1, 2]))


def test_train_eval_zero_grad_apply_and_casts():
    net = Net()
    assert net.training and net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(jg.randn(2, 1, 6, 6)).sum().backward()
    grads = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    assert all(g is p.grad and not g.numpy().any() for g, p in zip(grads, net.parameters()))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "Flatten", "Linear", "Sequential", "Net"]
    params = list(net.parameters())
    assert net.double() is net and [p for p in net.parameters()] == params
    assert all(p.dtype is jg.float64 for p in net.parameters()) and net.running.dtype is jg.float64
    assert net(jg.randn(1, 1, 6, 6, dtype=jg.float64)).dtype is jg.float64
    net.to(jg.float32)
    assert all(p.dtype is jg.float32 for p in net.parameters())


def test_attribute_errors():
    lin = nn.Linear(2, 3)
    assert error_text(lambda: setattr(lin, "weight", jg.zeros(3, 2))) == (
        "TypeError: cannot assign 'jitgrad.FloatTensor' as parameter 'weight' "
        "(torch.nn.Parameter or None expected)")
    assert error_text(lambda: lin.missing) == (
        "AttributeError: 'Linear' object has no attribute 'missing'")
    assert error_text(lambda: nn.Module()(1)) == (
        'NotImplementedError: Module [Module] is missing the required "forward" function')
    lin.bias = None
    assert list(lin.state_dict()) == ["weight"] and lin(jg.ones(1, 2)).shape == (1, 3)
    del lin.weight
    assert list(lin.state_dict()) == []


def test_sequential_and_modulelist_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and [type(m) for m in seq][1] is nn.ReLU
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    del seq[1]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    seq.append(nn.Tanh())
    assert len(seq) == 3
    named = nn.Sequential(collections.OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    with pytest.raises(IndexError):
        seq[5]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.ReLU())
    ml.insert(0, nn.Tanh())
    assert len(ml) == 5 and isinstance(ml[0], nn.Tanh) and isinstance(ml[1:3], nn.ModuleList)
    assert repr(nn.ModuleList([nn.ReLU(), nn.ReLU(), nn.Tanh()])) == (
        "ModuleList(\n  (0-1): 2 x ReLU()\n  (2): Tanh()\n)")



def test_sequential_follows_changes_to_its_children(lazy_mode):
    """Lazy mode records a Sequential's plain Linear and activation children directly; any
    change to the children (replaced, deleted, overridden, bias dropped, made in place)
    must show in the next forward, as it does in eager mode."""
    import copy

    class Doubled(nn.Linear):
        def forward(self, input):
            return super().forward(input) * 2

    def check(seq, x):
        got = seq(x)
        previous = jg.get_mode()
        jg.set_mode("eager")
        try:
            want = seq(x)
        finally:
            jg.set_mode(previous)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-6)
        assert type(got.grad_fn).__name__ == type(want.grad_fn).__name__
        return got

    jg.manual_seed(0)
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.ReLU())
    x = jg.randn(5, 3)
    assert type(check(seq, x).grad_fn).__name__ == "ReluBackward0"
    seq[3] = nn.Sigmoid()
    assert type(check(seq, x).grad_fn).__name__ == "SigmoidBackward0"
    del seq[3]
    assert type(check(seq, x).grad_fn).__name__ == "AddmmBackward0"
    seq[2].bias = None
    assert type(check(seq, x).grad_fn).__name__ == "MmBackward0"
    seq[1].forward = lambda input: input * 3
    assert type(check(seq, x).grad_fn).__name__ == "MmBackward0"
    np.testing.assert_allclose(seq[:2](x).detach().numpy(), (seq[0](x) * 3).detach().numpy(), rtol=1e-6)
    seq.append(nn.ReLU(inplace=True))
    check(seq, x)
    seq[0] = Doubled(3, 4)
    check(seq, x)
    clone = copy.deepcopy(seq)
    np.testing.assert_allclose(clone(x).detach().numpy(), seq(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        nn.Sequential(nn.Linear(4, 2), nn.Tanh())(x)
    # integer input: the activation takes its general path (promotes), as in eager mode
    ints = nn.Sequential(nn.Tanh())(jg.tensor([0, 1, 2]))
    np.testing.assert_allclose(ints.numpy(), np.tanh([0, 1, 2]), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jg.float32, jg.float64])
def test_lazy_lanes_match_eager_training(dtype, lazy_mode):
    """The lanes lazy mode records directly (Sequential's layers, cross-entropy's common
    case) train as eager mode does: float32 and float64, mean and sum, with and without
    autograd; out-of-range labels still raise PyTorch's error at the call."""
    def train(mode):
        jg.set_mode(mode)
        try:
            jg.manual_seed(1)
            model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 7), nn.Sigmoid(),
                                  nn.Linear(7, 3)).to(dtype)
            opt = jg.optim.SGD(model.parameters(), lr=0.1)
            x, y = jg.randn(6, 5, dtype=dtype), jg.tensor([0, 2, 1, 2, 0, 1])
            out = []
            for step in range(4):
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y, reduction="mean" if step % 2 else "sum")
                loss.backward()
                opt.step()
                with jg.no_grad():
                    out.append((loss.item(), model(x).numpy().copy()))
            return out
        finally:
            jg.set_mode("lazy")

    for (a, pa), (b, pb) in zip(train("lazy"), train("eager")):
        assert a == pytest.approx(b, rel=1e-5)
        np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        F.cross_entropy(jg.randn(2, 3, dtype=dtype), jg.tensor([0, 3]))

def test_linear_and_activation_recorded_as_one_op_show_eager_grad_fns(lazy_mode):
    """Lazy mode records a Sequential's Linear and the activation after it as one op; the
    user sees eager mode's graph (node by node, with saved tensors), gradients (first and
    second order) and the error of a backward through an output changed in place."""
    def run(mode):
        jg.set_mode(mode)
        try:
            jg.manual_seed(2)
            model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(),
                                  nn.Linear(4, 2), nn.Sigmoid()).to(jg.float64)
            x = jg.randn(5, 3, dtype=jg.float64, requires_grad=True)
            out = model(x)
            names, fn = [], out.grad_fn
            while fn is not None:
                names.append((fn.name(), len(fn.next_functions)))
                fn = fn.next_functions[0][0] if fn.next_functions else None
            (gx,) = jg.autograd.grad(out.sum(), x, create_graph=True)
            (gx * gx).sum().backward()
            seen = [out.detach().numpy(), gx.detach().numpy(), x.grad.numpy()]
            seen += [p.grad.numpy() for p in model.parameters()]
            out = model(x)
            with jg.no_grad():
                out.mul_(2)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
            return names, seen
        finally:
            jg.set_mode("lazy")

    names, got = run("lazy")
    assert names == run("eager")[0] == [
        ("SigmoidBackward0", 1), ("AddmmBackward0", 3), ("ReluBackward0", 1),
        ("AddmmBackward0", 3), ("TanhBackward0", 1), ("AddmmBackward0", 3),
        ("AccumulateGrad", 0)]
    for a, b in zip(got, run("eager")[1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert any(p.op.name == "linear_act" for p in _lazy_recorded(nn, F))


def _lazy_recorded(nn, F):
    """The ops lazy mode records for a Linear-Tanh Sequential (before it runs)."""
    from jitgrad import lazy
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    model(jg.randn(2, 3))
    recs = list(lazy._tls.rec.pending)
    lazy.flush()
    return recs


REPRS = [
    (lambda m: m.Linear(64, 128), "Linear(in_features=64, out_features=128, bias=True)"),
    (lambda m: m.Conv2d(1, 8, 3, padding=1, bias=False),
     "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)"),
    (lambda m: m.Conv2d(4, 8, (3, 2), stride=2, dilation=2, groups=2),
     "Conv2d(4, 8, kernel_size=(3, 2), stride=(2, 2), dilation=(2, 2), groups=2)"),
    (lambda m: m.Conv2d(1, 2, 4, padding="same"),
     "Conv2d(1, 2, kernel_size=(4, 4), stride=(1, 1), padding=same)"),
    (lambda m: m.MaxPool2d(2), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, "
                               "ceil_mode=False)"),
    (lambda m: m.AvgPool2d(3, 1, 1), "AvgPool2d(kernel_size=3, stride=1, padding=1)"),
    (lambda m: m.Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
    (lambda m: m.ReLU(), "ReLU()"),
    (lambda m: m.ReLU(inplace=True), "ReLU(inplace=True)"),
    (lambda m: m.GELU(approximate="tanh"), "GELU(approximate='tanh')"),
    (lambda m: m.Dropout(0.25), "Dropout(p=0.25, inplace=False)"),
    (lambda m: m.Embedding(10, 3, padding_idx=-1), "Embedding(10, 3, padding_idx=9)"),
    (lambda m: m.LayerNorm((4, 5)),
     "LayerNorm((4, 5), eps=1e-05, elementwise_affine=True, bias=True)"),
    (lambda m: m.CrossEntropyLoss(), "CrossEntropyLoss()"),
    (lambda m: m.Sequential(m.Linear(2, 3), m.Sequential(m.Tanh(), m.Sigmoid())),
     "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): Sequential(\n"
     "    (0): Tanh()\n    (1): Sigmoid()\n  )\n)"),
]


@pytest.mark.parametrize("make, text", REPRS)
def test_repr_like_pytorch(make, text):
    assert repr(make(nn)) == text


def test_repr_and_state_dict_keys_match_torch():
    torch = torch_or_skip()
    for make, _ in REPRS:
        assert repr(make(nn)) == repr(make(torch.nn))
    for kind in ("mlp", "cnn"):
        from jitgrad.examples.digits import build
        assert list(build(kind).state_dict()) == list(build(kind, torch.nn).state_dict())
    ln = (nn.LayerNorm(3), torch.nn.LayerNorm(3))
    emb = (nn.Embedding(4, 2), torch.nn.Embedding(4, 2))
    for ours, theirs in (ln, emb):
        assert list(ours.state_dict()) == list(theirs.state_dict())


# --- load_state_dict ----------------------------------------------------------------------

def test_load_state_dict_copies_in_place_and_reports_keys():
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    weight = dst.weight
    result = dst.load_state_dict(src.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert dst.weight is weight and np.array_equal(dst.weight.detach().numpy(),
                                                   src.weight.detach().numpy())
    result = dst.load_state_dict({"weight": jg.zeros(2, 3), "extra": jg.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    new = jg.ones(2, 3)
    dst.load_state_dict({"weight": new, "bias": jg.zeros(2)}, assign=True)
    assert isinstance(dst.weight, nn.Parameter) and np.shares_memory(dst.weight.numpy(force=True),
                                                                     new.numpy())


LOAD_ERRORS = [
    ({"weight": (2, 3)}, 'Error(s) in loading state_dict for Linear:\n\t'
                         'Missing key(s) in state_dict: "bias". '),
    ({"weight": (2, 3), "bias": (2,), "extra": (1,), "more.x": (1,)},
     'Error(s) in loading state_dict for Linear:\n\t'
     'Unexpected key(s) in state_dict: "extra", "more.x". '),
    ({"weight": (2, 4), "bias": (2,)},
     "Error(s) in loading state_dict for Linear:\n\tsize mismatch for weight: copying a param "
     "with shape jitgrad.Size([2, 4]) from checkpoint, the shape in current model is "
     "jitgrad.Size([2, 3])."),
    ({"weight": (2, 4), "extra": (1,)},
     'Error(s) in loading state_dict for Linear:\n\tMissing key(s) in state_dict: "bias". \n\t'
     'Unexpected key(s) in state_dict: "extra". \n\tsize mismatch for weight: copying a param '
     "with shape jitgrad.Size([2, 4]) from checkpoint, the shape in current model is "
     "jitgrad.Size([2, 3])."),
]


@pytest.mark.parametrize("shapes, message", LOAD_ERRORS)
def test_load_state_dict_errors(shapes, message):
    lin = nn.Linear(3, 2)
    before = lin.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError) as info:
        lin.load_state_dict({k: jg.zeros(*s) for k, s in shapes.items()})
    assert str(info.value) == message
    if "size mismatch" in message:
        assert np.array_equal(lin.weight.detach().numpy(), before)


@pytest.mark.parametrize("shapes, message", LOAD_ERRORS)
def test_load_state_dict_errors_match_torch(shapes, message):
    torch = torch_or_skip()
    with pytest.raises(RuntimeError) as info:
        torch.nn.Linear(3, 2).load_state_dict({k: torch.zeros(*s) for k, s in shapes.items()})
    assert str(info.value) == message.replace("jitgrad.", "torch.")


def test_load_state_dict_nested_model_roundtrip():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = jg.randn(2, 1, 6, 6)
    assert np.array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "head.1.bias"'):
        sd = a.state_dict()
        del sd["head.1.bias"]
        b.load_state_dict(sd)


# --- layers against float64 references and gradcheck -----------------------------------------

CONV_CASES = [  # kernel, stride, padding, dilation, groups
    ((3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((3, 2), (2, 1), (1, 2), (1, 2), 1),
    ((2, 2), (1, 1), (1, 1), (2, 1), 2),
]


@pytest.mark.parametrize("k, s, p, d, g", CONV_CASES)
def test_conv2d_forward_and_grad(k, s, p, d, g):
    x, w, b = f64(2, 4, 7, 6), f64(6, 4 // g, *k), f64(6)
    out = F.conv2d(x, w, b, s, p, d, g)
    xs, ws = x.detach().numpy(), w.detach().numpy()
    parts = [ref_conv2d(xs[:, i * 4 // g:(i + 1) * 4 // g], ws[i * 6 // g:(i + 1) * 6 // g],
                        b.detach().numpy()[i * 6 // g:(i + 1) * 6 // g], s, p, d)
             for i in range(g)]
    np.testing.assert_allclose(out.detach().numpy(), np.concatenate(parts, 1), rtol=1e-12)
    x, w, b = f64(1, 4, 5, 5), f64(2, 4 // g, *k), f64(2)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), (x, w, b))


def test_conv2d_same_valid_unbatched_and_second_order():
    x, w = f64(3, 6, 5), f64(2, 3, 4, 4)
    same = F.conv2d(x, w, padding="same")
    assert same.shape == (2, 6, 5)
    full = ref_conv2d(np.pad(x.detach().numpy()[None], ((0, 0), (0, 0), (1, 2), (1, 2))),
                      w.detach().numpy(), np.zeros(2), (1, 1), (0, 0), (1, 1))[0]
    np.testing.assert_allclose(same.detach().numpy(), full, rtol=1e-12)
    assert F.conv2d(x, w, padding="valid").shape == (2, 3, 2)
    x, w = f64(1, 2, 4, 4), f64(2, 2, 2, 2)
    assert gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w))


def test_conv2d_module_matches_functional():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    x = jg.randn(2, 2, 8, 8)
    out = conv(x)
    ref = ref_conv2d(x.numpy().astype(np.float64), conv.weight.detach().numpy(),
                     conv.bias.detach().numpy(), (2, 2), (1, 1), (1, 1))
    assert out.dtype is jg.float32 and out.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_pools_forward_and_grad(k, s, p):
    x = f64(2, 3, 7, 7)
    xs = x.detach().numpy()
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, p).detach().numpy(),
                                  ref_pool(xs, k, s, p, np.max, -np.inf))
    np.testing.assert_allclose(F.avg_pool2d(x, k, s, p).detach().numpy(),
                               ref_pool(xs, k, s, p, np.mean, 0.0), rtol=1e-12)
    counts = ref_pool(np.ones_like(xs), k, s, p, np.sum, 0.0)
    np.testing.assert_allclose(
        F.avg_pool2d(x, k, s, p, count_include_pad=False).detach().numpy(),
        ref_pool(xs, k, s, p, np.sum, 0.0) / counts, rtol=1e-12)
    assert gradcheck(lambda x: F.max_pool2d(x, k, s, p), (x,))
    assert gradcheck(lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=False), (x,))


def test_max_pool_ties_nan_indices_and_modules():
    x = jg.tensor([[[[1.0, 1.0], [0.0, 1.0]]]], requires_grad=True)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    out.sum().backward()
    assert idx.tolist() == [[[[0]]]] and x.grad.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    y = jg.tensor([[[[1.0, float("nan")], [3.0, 1.0]]]])
    assert math.isnan(F.max_pool2d(y, 2).item())
    # without indices (MaxPool2d(2)'s unrolled search, and the general one for 3x3 windows):
    # the first maximum takes the gradient, and of several NaNs the last, as in PyTorch's
    # CPU kernel (these are its gradients)
    for k, data, want in [
            (2, [[1.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]),
            (2, [[1.0, float("nan")], [float("nan"), 5.0]], [[0.0, 0.0], [1.0, 0.0]]),
            (3, [[2.0, 0.0, 2.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
             [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
            (3, [[0.0, 1.0, 0.0], [float("nan"), 2.0, float("nan")], [0.0, 0.0, 0.0]],
             [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])]:
        for indices in (False, True):
            x = jg.tensor([[data]], requires_grad=True)
            out = F.max_pool2d(x, k, return_indices=indices)
            (out[0] if indices else out).sum().backward()
            assert x.grad.tolist() == [[want]]
    x = jg.randn(2, 3, 9, 9)
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(3, 2, 1, ceil_mode=True)(x).shape == (2, 3, 5, 5)


def test_linear_flatten_activations():
    lin = nn.Linear(5, 4).double()
    x = f64(3, 2, 5)
    ref = x.detach().numpy() @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    np.testing.assert_allclose(lin(x).detach().numpy(), ref, rtol=1e-12)
    assert gradcheck(lambda x, w, b: F.linear(x, w, b), (x, f64(4, 5), f64(4)))
    assert nn.Flatten()(jg.zeros(2, 3, 4, 5)).shape == (2, 60)
    assert nn.Flatten(0, 1)(jg.zeros(2, 3, 4)).shape == (6, 4)
    xs = x.detach().numpy()
    np.testing.assert_allclose(nn.GELU()(x).detach().numpy(),
                               xs * 0.5 * (1 + erf(xs / math.sqrt(2))), rtol=1e-13)
    tanh_ref = 0.5 * xs * (1 + np.tanh(math.sqrt(2 / math.pi) * (xs + 0.044715 * xs ** 3)))
    np.testing.assert_allclose(nn.GELU("tanh")(x).detach().numpy(), tanh_ref, rtol=1e-12)
    for act in (nn.GELU(), nn.GELU("tanh"), nn.ReLU(), nn.Tanh(), nn.Sigmoid()):
        assert gradcheck(act, (f64(4, 3) + 0.01,))
    assert gradgradcheck(nn.GELU(), (f64(3, 2),))
    np.testing.assert_allclose(nn.Sigmoid()(x).detach().numpy(), 1 / (1 + np.exp(-xs)),
                               rtol=1e-12)
    assert nn.GELU()(jg.randn(3)).dtype is jg.float32


def test_layer_norm():
    x, w, b = f64(4, 3, 5), f64(3, 5), f64(3, 5)
    xs = x.detach().numpy()
    mu, var = xs.mean((1, 2), keepdims=True), xs.var((1, 2), keepdims=True)
    ref = (xs - mu) / np.sqrt(var + 1e-5) * w.detach().numpy() + b.detach().numpy()
    np.testing.assert_allclose(F.layer_norm(x, (3, 5), w, b).detach().numpy(), ref, rtol=1e-11)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 5), w, b), (x, w, b))
    ln = nn.LayerNorm(5)
    assert ln.weight.tolist() == [1.0] * 5 and ln.bias.tolist() == [0.0] * 5
    assert nn.LayerNorm(5, elementwise_affine=False).weight is None


def test_embedding():
    emb = nn.Embedding(6, 3, padding_idx=2)
    assert emb.weight[2].tolist() == [0.0, 0.0, 0.0]
    idx = jg.tensor([[0, 2, 5], [2, 2, 1]])
    out = emb(idx)
    np.testing.assert_array_equal(out.detach().numpy(), emb.weight.detach().numpy()[idx.numpy()])
    out.sum().backward()
    counts = np.bincount(idx.numpy().ravel(), minlength=6).astype(np.float32)
    counts[2] = 0
    np.testing.assert_array_equal(emb.weight.grad.numpy(), np.repeat(counts[:, None], 3, 1))
    w = f64(6, 3)
    assert gradcheck(lambda w: F.embedding(jg.tensor([[1, 1], [4, 0]]), w), (w,))


def test_losses():
    logits, target = f64(6, 5), jg.tensor([0, 4, 2, 2, 1, 3])
    lp = ref_log_softmax(logits.detach().numpy())
    picked = -lp[np.arange(6), target.numpy()]
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(), picked.mean(), rtol=1e-13)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="sum")(logits, target).item(),
                               picked.sum(), rtol=1e-13)
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="none").detach().numpy(),
                               picked, rtol=1e-13)
    ignored = jg.tensor([0, -100, 2, 2, -100, 3])
    keep = ignored.numpy() != -100
    np.testing.assert_allclose(F.cross_entropy(logits, ignored).item(), picked[keep].mean(),
                               rtol=1e-13)
    weight = jg.tensor([1.0, 2.0, 0.5, 1.0, 3.0], dtype=jg.float64)
    wt = weight.numpy()[target.numpy()]
    np.testing.assert_allclose(F.cross_entropy(logits, target, weight=weight).item(),
                               (picked * wt).sum() / wt.sum(), rtol=1e-13)
    np.testing.assert_allclose(F.nll_loss(jg.tensor(lp), target).item(), picked.mean(),
                               rtol=1e-13)
    for fn in (lambda x: F.cross_entropy(x, target), lambda x: F.cross_entropy(x, ignored),
               lambda x: F.cross_entropy(x, target, label_smoothing=0.2),
               lambda x: F.cross_entropy(x, target, weight=weight, reduction="sum")):
        assert gradcheck(fn, (logits,))
    big = jg.tensor([[1000.0, 0.0, -1000.0]])
    assert F.cross_entropy(big, jg.tensor([1])).item() == pytest.approx(1000.0)
    pred, goal = f64(4, 3), f64(4, 3)
    np.testing.assert_allclose(nn.MSELoss()(pred, goal).item(),
                               ((pred.detach().numpy() - goal.detach().numpy()) ** 2).mean(),
                               rtol=1e-13)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction="sum"), (pred, goal))
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(jg.zeros(3, 1), jg.zeros(3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_is_one_op_with_pytorchs_gradients(reduction):
    """Same-shape float operands record one op, ``MseLossBackward0`` as in PyTorch, whose
    gradients reach input and target (and differentiate again); other shapes broadcast."""
    pred, goal = f64(4, 3), f64(4, 3)
    out = F.mse_loss(pred, goal, reduction=reduction)
    assert out.grad_fn.name() == "MseLossBackward0"
    diff = pred.detach().numpy() - goal.detach().numpy()
    ref = {"mean": (diff ** 2).mean(), "sum": (diff ** 2).sum(), "none": diff ** 2}[reduction]
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-13)
    assert gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), (pred, goal))
    assert gradgradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), (pred, goal))
    x32 = jg.tensor(RNG.standard_normal((6, 2)).astype(np.float32), requires_grad=True)
    y32 = jg.tensor(RNG.standard_normal((6, 2)).astype(np.float32))
    loss = F.mse_loss(x32, y32, reduction=reduction)
    (loss if reduction != "none" else loss.sum()).backward()
    scale = 2 / 12 if reduction == "mean" else 2
    np.testing.assert_allclose(x32.grad.numpy(), scale * (x32.detach().numpy() - y32.numpy()),
                               rtol=1e-6)
    assert y32.grad is None
    with pytest.warns(UserWarning, match="different to the input size"):
        wide = F.mse_loss(f64(3, 1), f64(3), reduction=reduction)
    assert wide.shape == ((3, 3) if reduction == "none" else ())
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        F.mse_loss(pred, goal, reduction="avg")


def test_dropout_uses_global_rng_and_is_identity_in_eval():
    drop = nn.Dropout(0.25)
    x = jg.ones(400, 50)
    jg.manual_seed(3)
    a = drop(x)
    jg.manual_seed(3)
    b = drop(x)
    assert np.array_equal(a.numpy(), b.numpy())
    kept = a.numpy() != 0
    assert abs(kept.mean() - 0.75) < 0.01 and np.allclose(a.numpy()[kept], 1 / 0.75)
    assert drop.eval()(x) is x
    assert not F.dropout(x, 1.0).numpy().any() and F.dropout(x, 0.0) is x
    y = jg.randn(5, 4, requires_grad=True)
    jg.manual_seed(1)
    out = F.dropout(y, 0.5)
    out.sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), (out.detach().numpy() != 0) * 2.0)


def test_new_primitives_keep_float32():
    x = jg.randn(2, 3, 6, 6)
    assert F.conv2d(x, jg.randn(4, 3, 3, 3)).dtype is jg.float32
    assert F.avg_pool2d(x, 2).dtype is jg.float32 and F.gelu(x).dtype is jg.float32
    assert F.max_pool2d(x, 2).dtype is jg.float32


# --- init ---------------------------------------------------------------------------------

def test_init_functions_and_default_initialisation():
    assert nn.init.calculate_gain("relu") == math.sqrt(2)
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2 / 6)
    w = jg.empty(200, 300)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(300)
    assert abs(w).max().item() <= bound and abs(w).max().item() > 0.95 * bound
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.std().item() - math.sqrt(2 / 300)) < 0.003
    nn.init.xavier_uniform_(w)
    assert abs(w).max().item() <= math.sqrt(6 / 500)
    nn.init.xavier_normal_(w)
    assert abs(w.std().item() - math.sqrt(2 / 500)) < 0.003
    nn.init.constant_(w, 0.5)
    assert (w == 0.5).all()
    nn.init.zeros_(w)
    assert not w.numpy().any()
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(jg.empty(3))
    lin = nn.Linear(40, 30)
    assert abs(lin.weight).max().item() <= 1 / math.sqrt(40)
    assert abs(lin.bias).max().item() <= 1 / math.sqrt(40)
    conv = nn.Conv2d(2, 4, 3)
    assert abs(conv.bias).max().item() <= 1 / math.sqrt(18)
    emb = nn.Embedding(300, 100)
    assert abs(emb.weight.std().item() - 1) < 0.02
    jg.manual_seed(5)
    a = nn.Linear(3, 3).weight.detach().numpy().copy()
    jg.manual_seed(5)
    assert np.array_equal(a, nn.Linear(3, 3).weight.detach().numpy())
    assert nn.Linear(3, 3, dtype=jg.float64).weight.dtype is jg.float64


# --- errors -------------------------------------------------------------------------------

ERRORS = [
    ("linear", lambda m, t: m.Linear(4, 5)(t.zeros(2, 3)),
     "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
    ("conv channels", lambda m, t: m.Conv2d(1, 8, 3)(t.zeros(2, 3, 8, 8)),
     "RuntimeError: Given groups=1, weight of size [8, 1, 3, 3], expected input[2, 3, 8, 8] to "
     "have 1 channels, but got 3 channels instead"),
    ("conv rank", lambda m, t: m.Conv2d(1, 8, 3)(t.zeros(2, 8)),
     "RuntimeError: Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of "
     "size: [2, 8]"),
    ("conv small", lambda m, t: m.Conv2d(1, 8, 3)(t.zeros(2, 1, 2, 2)),
     "RuntimeError: Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). "
     "Kernel size can't be greater than actual input size"),
    ("conv groups", lambda m, t: m.Conv2d(3, 4, 3, groups=2),
     "ValueError: in_channels must be divisible by groups"),
    ("pool padding", lambda m, t: m.MaxPool2d(2, padding=2)(t.zeros(1, 1, 5, 5)),
     "RuntimeError: pad should be at most half of effective kernel size, but got pad=2, "
     "kernel_size=2 and dilation=1"),
    ("pool rank", lambda m, t: m.MaxPool2d(2)(t.zeros(1, 5)),
     "RuntimeError: non-empty 3D or 4D (batch mode) tensor expected for input"),
    ("ce batch", lambda m, t: m.CrossEntropyLoss()(t.zeros(3, 4), t.tensor([1, 2])),
     "ValueError: Expected input batch_size (3) to match target batch_size (2)."),
    ("ce bounds", lambda m, t: m.CrossEntropyLoss()(t.zeros(2, 4), t.tensor([1, 5])),
     "IndexError: Target 5 is out of bounds."),
    ("ce reduction", lambda m, t: m.CrossEntropyLoss(reduction="avg")(t.zeros(2, 4),
                                                                     t.tensor([1, 2])),
     "ValueError: avg is not a valid value for reduction"),
    ("layer norm", lambda m, t: m.LayerNorm(10)(t.zeros(2, 5)),
     "RuntimeError: Given normalized_shape=[10], expected input with shape [*, 10], but got "
     "input of size[2, 5]"),
    ("embedding", lambda m, t: m.Embedding(10, 3)(t.tensor([10])),
     "IndexError: index out of range in self"),
    ("dropout", lambda m, t: m.Dropout(1.5),
     "ValueError: dropout probability has to be between 0 and 1, but got 1.5"),
]


@pytest.mark.parametrize("name, make, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages(name, make, message):
    assert error_text(lambda: make(nn, jg)) == message


@pytest.mark.parametrize("name, make, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages_match_torch(name, make, message):
    torch = torch_or_skip()
    assert error_text(lambda: make(torch.nn, torch)) == message


# --- parity with PyTorch from identical weights -------------------------------------------------

PARITY = [  # (name, builder taking an nn namespace, input shape, integer input range)
    ("linear", lambda m: m.Linear(7, 5), (4, 7), None),
    ("conv", lambda m: m.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 9, 8), None),
    ("conv groups dilation", lambda m: m.Conv2d(4, 6, (3, 2), padding=(2, 1), dilation=(2, 1),
                                                groups=2), (2, 4, 7, 6), None),
    ("conv same", lambda m: m.Conv2d(2, 3, 4, padding="same"), (1, 2, 6, 5), None),
    ("maxpool", lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 9, 8), None),
    ("avgpool", lambda m: m.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     (2, 3, 9, 8), None),
    ("gelu", lambda m: m.GELU(), (4, 6), None),
    ("gelu tanh", lambda m: m.GELU(approximate="tanh"), (4, 6), None),
    ("layernorm", lambda m: m.LayerNorm((3, 4)), (2, 3, 4), None),
    ("embedding", lambda m: m.Embedding(10, 4, padding_idx=3), (3, 5), 10),
    ("cnn", lambda m: m.Sequential(m.Conv2d(1, 4, 3, padding=1), m.ReLU(), m.MaxPool2d(2),
                                   m.Flatten(), m.Linear(16, 3), m.Tanh()), (5, 1, 4, 4), None),
]


@pytest.mark.parametrize("name, build, shape, high", PARITY, ids=[p[0] for p in PARITY])
def test_layers_match_torch(name, build, shape, high):
    torch = torch_or_skip()
    ours, theirs = build(nn), build(torch.nn)
    with torch.no_grad():  # identical weights: ours, copied into torch
        for (k, v), (k2, t) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            assert k == k2
            t.copy_(torch.from_numpy(v.numpy()))
    if high is None:
        x = RNG.standard_normal(shape).astype(np.float32)
        xj, xt = jg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    else:
        x = RNG.integers(0, high, shape)
        xj, xt = jg.tensor(x), torch.tensor(x)
    out_j, out_t = ours(xj), theirs(xt)
    np.testing.assert_allclose(out_j.detach().numpy(), out_t.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    g = RNG.standard_normal(out_t.shape).astype(np.float32)
    out_j.backward(jg.tensor(g))
    out_t.backward(torch.tensor(g))
    if high is None:
        np.testing.assert_allclose(xj.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    for (k, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=k)


LOSSES = [
    ("ce", lambda F_, t, lib: F_.cross_entropy(t[0], t[1])),
    ("ce sum ignore", lambda F_, t, lib: F_.cross_entropy(t[0], t[2], reduction="sum")),
    ("ce weight", lambda F_, t, lib: F_.cross_entropy(t[0], t[2], weight=t[3])),
    ("ce smoothing", lambda F_, t, lib: F_.cross_entropy(t[0], t[2], label_smoothing=0.1)),
    ("ce none", lambda F_, t, lib: F_.cross_entropy(t[0], t[1], reduction="none")),
    ("ce probs", lambda F_, t, lib: F_.cross_entropy(t[0], lib.softmax(t[4], 1))),
    ("nll", lambda F_, t, lib: F_.nll_loss(lib.log_softmax(t[0], 1), t[1])),
    ("mse", lambda F_, t, lib: F_.mse_loss(t[0], t[4])),
]


@pytest.mark.parametrize("name, fn", LOSSES, ids=[x[0] for x in LOSSES])
def test_losses_match_torch(name, fn):
    torch = torch_or_skip()
    x = RNG.standard_normal((8, 5)).astype(np.float32)
    target = RNG.integers(0, 5, 8)
    ignored = target.copy()
    ignored[[1, 6]] = -100
    weight = RNG.uniform(0.5, 2, 5).astype(np.float32)
    other = RNG.standard_normal((8, 5)).astype(np.float32)
    xj, xt = jg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    args_j = (xj, jg.tensor(target), jg.tensor(ignored), jg.tensor(weight), jg.tensor(other))
    args_t = (xt, torch.tensor(target), torch.tensor(ignored), torch.tensor(weight),
              torch.tensor(other))
    out_j, out_t = fn(F, args_j, jg), fn(torch.nn.functional, args_t, torch)
    np.testing.assert_allclose(out_j.detach().numpy(), out_t.detach().numpy(), rtol=1e-6,
                               atol=1e-7)
    out_j.sum().backward()
    out_t.sum().backward()
    np.testing.assert_allclose(xj.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_with_and_without_bias_and_subclassed(bias):
    """Linear reads its parameters straight from ``_parameters`` when it can; without a
    bias, in a subclass, or after ``weight`` is replaced, it still uses the right ones."""
    class Sub(nn.Linear):
        pass

    x = jg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 5)
    for cls in (nn.Linear, Sub):
        jg.manual_seed(0)
        m = cls(3, 2, bias=bias)
        w = m.weight.detach().numpy()
        b = m.bias.detach().numpy() if bias else 0
        np.testing.assert_allclose(m(x).detach().numpy(), x.numpy() @ w.T + b, rtol=1e-6)
    m = nn.Linear(3, 2, bias=bias)
    m.weight = nn.Parameter(jg.ones(2, 3))
    expected = np.repeat(x.numpy().sum(1, keepdims=True), 2, axis=1)
    np.testing.assert_allclose(m(x).detach().numpy(),
                               expected + (m.bias.detach().numpy() if bias else 0), rtol=1e-6)


# --- nn.utils ---------------------------------------------------------------------------

@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_against_numpy(norm_type, max_norm):
    """The norm of the gradients' norms, and each gradient scaled in place by
    ``min(max_norm / (norm + 1e-6), 1)``; parameters without a gradient are skipped."""
    shapes = [(3, 4), (5,), (2, 2, 2)]
    grads = [RNG.standard_normal(s) for s in shapes]
    params = [jg.tensor(RNG.standard_normal(s), requires_grad=True) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = jg.tensor(g)
    skipped = jg.tensor([1.0, 2.0], dtype=jg.float64, requires_grad=True)
    homes = [p.grad for p in params]
    total = nn.utils.clip_grad_norm_(params + [skipped], max_norm, norm_type=norm_type)
    flat = np.abs(np.concatenate([g.ravel() for g in grads]))
    want = flat.max() if norm_type == math.inf else (flat ** norm_type).sum() ** (1 / norm_type)
    assert total.item() == pytest.approx(want, rel=1e-12)
    factor = min(max_norm / (want + 1e-6), 1.0)
    for p, g, home in zip(params, grads, homes):
        assert p.grad is home  # scaled in place
        np.testing.assert_allclose(p.grad.numpy(), g * factor, rtol=1e-12)
    assert skipped.grad is None


def test_clip_grad_utilities_match_torch_and_report_errors():
    torch = torch_or_skip()
    grads = [RNG.standard_normal(s).astype(np.float32) for s in [(4, 3), (3,)]]
    ours = [jg.zeros(g.shape, requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = jg.tensor(g), torch.tensor(g)
    a = nn.utils.clip_grad_norm_(ours, 1.0)
    b = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert a.dtype is jg.float32 and a.item() == pytest.approx(b.item(), rel=1e-6)
    nn.utils.clip_grad_value_(ours[0], 0.1)
    torch.nn.utils.clip_grad_value_(theirs[0], 0.1)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6)
    assert nn.utils.clip_grad_norm_([jg.zeros(2, requires_grad=True)], 1.0).item() == 0.0
    bad = jg.zeros(2, requires_grad=True)
    bad.grad = jg.tensor([float("nan"), 1.0])
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        nn.utils.clip_grad_norm_([bad], 1.0, error_if_nonfinite=True)
    vec = nn.utils.parameters_to_vector(ours)
    np.testing.assert_array_equal(
        vec.detach().numpy(), torch.nn.utils.parameters_to_vector(theirs).detach().numpy())
    nn.utils.vector_to_parameters(vec * 2, ours)
    np.testing.assert_array_equal(ours[1].detach().numpy(), np.zeros(3))
    nn.utils.vector_to_parameters(jg.arange(15.0), ours)
    assert ours[1].tolist() == [12.0, 13.0, 14.0] and ours[0].shape == (4, 3)


def test_clipping_between_backward_and_step_trains_as_eager(lazy_mode):
    """Clipping reads and scales the gradients a cached lazy step wrote into the optimizer's
    arena; the step then uses the clipped values, as in eager mode."""
    def train(mode):
        jg.set_mode(mode)
        try:
            jg.manual_seed(4)
            model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
            opt = jg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
            x, y = jg.randn(6, 3), jg.randn(6, 2)
            norms = []
            for _ in range(6):
                opt.zero_grad()
                F.mse_loss(model(x), y).backward()
                norms.append(nn.utils.clip_grad_norm_(model.parameters(), 0.1).item())
                opt.step()
            return norms, [p.detach().numpy().copy() for p in model.parameters()]
        finally:
            jg.set_mode("lazy")

    (n1, p1), (n2, p2) = train("lazy"), train("eager")
    np.testing.assert_allclose(n1, n2, rtol=1e-5)
    assert max(n1) > 0.1  # the clipping did scale
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
