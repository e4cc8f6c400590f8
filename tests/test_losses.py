"""Loss functions and modules: values, gradients and errors against PyTorch.

The comparisons with PyTorch skip where torch is not importable; gradchecks, hand-computed
values and error messages run everywhere.
"""
import math
import warnings

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import nn
from jitgrad.nn import functional as F

REDUCTIONS = ("none", "mean", "sum")
DTYPES = ("float64", "float32")
TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=2e-5, atol=2e-6)}


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(params=["lazy", "eager"])
def each_mode(request):
    """Run a test in lazy and in eager mode, then restore the mode."""
    previous = jg.get_mode()
    jg.set_mode(request.param)
    yield request.param
    jg.set_mode(previous)


def convert(lib, value, dtype, grad):
    """A numpy array as a ``lib`` tensor (float arrays in ``dtype``); other values as is."""
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype.kind == "f":
        value = value.astype(dtype)
    t = lib.tensor(value)
    return t.requires_grad_() if grad and value.dtype.kind == "f" else t


def run(lib, name, args, kwargs, dtype, grad):
    """``lib``'s functional ``name`` on ``args``; its value and the gradients of every float
    argument in ``grad`` (positions) under a fixed upstream gradient."""
    functional = lib.nn.functional
    targs = [convert(lib, a, dtype, i in grad) for i, a in enumerate(args)]
    tkwargs = {k: convert(lib, v, dtype, False) for k, v in kwargs.items()}
    out = getattr(functional, name)(*targs, **tkwargs)
    upstream = np.random.default_rng(1).uniform(0.5, 1.5, tuple(out.shape)).astype(dtype)
    grads = []
    if grad and out.requires_grad:
        (out * lib.tensor(upstream)).sum().backward()
        grads = [targs[i].grad.detach().numpy() for i in grad]
    return out.detach().numpy(), grads


def compare(torch, name, args, dtype, grad=(0,), **kwargs):
    """jitgrad's and PyTorch's values and gradients agree."""
    ours, ours_grads = run(jg, name, args, kwargs, dtype, grad)
    theirs, their_grads = run(torch, name, args, kwargs, dtype, grad)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, **TOL[dtype])
    assert len(ours_grads) == len(their_grads)
    for a, b in zip(ours_grads, their_grads):
        assert np.all(np.isfinite(a)) == np.all(np.isfinite(b))
        np.testing.assert_allclose(a, b, **TOL[dtype])


rng = np.random.default_rng(0)
X, Y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
P, Q = rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))
W3 = rng.uniform(0.5, 2.0, 3)

ELEMENTWISE = [
    ("l1_loss", (X, Y), {}),
    ("l1_loss", (X, X.copy()), {}),  # at zero difference: sign(0) = 0 in both
    ("mse_loss", (X, Y), {}),
    ("smooth_l1_loss", (X, Y), {}),
    ("smooth_l1_loss", (X, Y), {"beta": 0.5}),
    ("smooth_l1_loss", (X, Y), {"beta": 0.0}),
    ("smooth_l1_loss", (X, X + np.array([0.5, -0.5, 2.0])), {"beta": 0.5}),  # |d| == beta
    ("huber_loss", (X, Y), {}),
    ("huber_loss", (X, Y), {"delta": 0.3}),
    ("binary_cross_entropy", (P, Q), {}),
    ("binary_cross_entropy", (P, Q), {"weight": W3}),
    ("binary_cross_entropy", (P, Q), {"weight": rng.uniform(0.5, 2.0, (4, 1))}),
    # probabilities of exactly 0 and 1: logs clamped at -100, gradients finite
    ("binary_cross_entropy", (np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5]),
                              np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.5])), {}),
    ("binary_cross_entropy_with_logits", (X, Q), {}),
    ("binary_cross_entropy_with_logits", (X, Q), {"weight": W3}),
    ("binary_cross_entropy_with_logits", (X, Q), {"pos_weight": W3}),
    ("binary_cross_entropy_with_logits", (X, Q), {"pos_weight": W3, "weight": W3[::-1].copy()}),
    # saturated and zero logits: no overflow, the gradient at 0 is -0.5 + (1 - y)
    ("binary_cross_entropy_with_logits", (np.array([-800.0, -30.0, 0.0, 30.0, 800.0]),
                                          np.array([1.0, 1.0, 0.3, 0.0, 0.0])), {}),
    ("kl_div", (np.log(P), Q), {"reduction": "batchmean"}),
    ("kl_div", (np.log(P), np.array([[0.0, 0.5, 0.5]] * 4)), {"reduction": "sum"}),
    ("kl_div", (np.log(P), np.log(Q)), {"log_target": True}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, args, kwargs", ELEMENTWISE,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ELEMENTWISE)])
def test_elementwise_losses_match_torch(torch, name, args, kwargs, reduction, dtype):
    kwargs = dict(kwargs)
    if name == "kl_div" and "reduction" in kwargs:
        if reduction == "mean":
            reduction = kwargs["reduction"]  # ("mean" warns: tested on its own)
        kwargs.pop("reduction")
    elif name == "kl_div" and reduction == "mean":
        reduction = "batchmean"
    # (PyTorch's target gradient where a target is 0 is xlogy's 0 / 0 = NaN; jitgrad's is
    # the finite limit, so only the input's is compared there)
    grad = (0,) if name == "kl_div" and not np.all(args[1]) else (0, 1)
    compare(torch, name, args, dtype, grad=grad, reduction=reduction, **kwargs)


def test_kl_div_mean_warns_and_divides_by_every_element(torch):
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size") as ours:
        compare(torch, "kl_div", (np.log(P), Q), "float64", grad=(0, 1))
    assert str(ours[0].message) == str(_warning_of(lambda: torch.nn.functional.kl_div(
        torch.tensor(np.log(P)), torch.tensor(Q))))


def _warning_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    assert len(caught) == 1
    return caught[0].message


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses_warn_on_broadcast_targets(torch, name):
    x, y = rng.normal(size=(3,)), rng.normal(size=(3, 1))
    with pytest.warns(UserWarning) as ours:
        compare(torch, name, (x, y), "float64", grad=(0, 1))
    theirs = _warning_of(lambda: getattr(torch.nn.functional, name)(
        torch.tensor(x), torch.tensor(y)))
    assert str(ours[0].message) == str(theirs).replace("torch.", "jitgrad.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same shapes: no warning
        getattr(F, name)(jg.tensor(x), jg.tensor(x))


LOGITS = rng.normal(size=(5, 4))
LABELS = np.array([0, 3, 1, 1, 2])
IMAGE = rng.normal(size=(2, 4, 3, 2))
IMAGE_LABELS = rng.integers(0, 4, (2, 3, 2))
W4 = np.array([0.5, 2.0, 1.0, 1.5])
IGNORED = np.array([0, -100, 1, 3, -100])
CLASS_CASES = [
    ((LOGITS, LABELS), {}),
    ((LOGITS, LABELS), {"weight": W4}),
    ((LOGITS, IGNORED), {}),
    ((LOGITS, IGNORED), {"weight": W4}),
    ((LOGITS, np.array([0, 2, 1, 2, 3])), {"ignore_index": 2, "weight": W4}),
    ((IMAGE, IMAGE_LABELS), {}),
    ((IMAGE, IMAGE_LABELS), {"weight": W4, "ignore_index": 1}),
    ((LOGITS[0], np.array(2)), {}),  # (C,) input, 0-d target
    ((LOGITS[:0], LABELS[:0]), {}),  # no rows: the mean is NaN
    ((LOGITS[:2], np.array([-100, -100])), {}),  # everything ignored: NaN mean as well
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", range(len(CLASS_CASES)))
def test_nll_loss_matches_torch(torch, case, reduction, dtype):
    (x, t), kwargs = CLASS_CASES[case]
    x = x - np.log(np.exp(x).sum(-1 if x.ndim == 1 else 1, keepdims=True))
    compare(torch, "nll_loss", (x, t), dtype, reduction=reduction, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("case", range(len(CLASS_CASES)))
def test_cross_entropy_with_class_indices_matches_torch(torch, case, smoothing, reduction,
                                                        dtype):
    (x, t), kwargs = CLASS_CASES[case]
    compare(torch, "cross_entropy", (x, t), dtype, reduction=reduction,
            label_smoothing=smoothing, **kwargs)


PROBS = rng.dirichlet(np.ones(4), 5)
IMAGE_PROBS = np.moveaxis(rng.dirichlet(np.ones(4), (2, 3, 2)), -1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kwargs", [{}, {"weight": W4}, {"label_smoothing": 0.2},
                                    {"weight": W4, "label_smoothing": 0.2}])
@pytest.mark.parametrize("x, t", [(LOGITS, PROBS), (IMAGE, IMAGE_PROBS), (LOGITS[1], PROBS[1])],
                         ids=["rows", "image", "one"])
def test_cross_entropy_with_probabilities_matches_torch(torch, x, t, kwargs, reduction, dtype):
    compare(torch, "cross_entropy", (x, t), dtype, grad=(0, 1), reduction=reduction, **kwargs)


def test_loss_modules_match_torch(torch):
    w = jg.tensor(W3)
    pairs = [
        (nn.L1Loss(), torch.nn.L1Loss(), X, Y),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), X, Y),
        (nn.SmoothL1Loss(beta=0.4), torch.nn.SmoothL1Loss(beta=0.4), X, Y),
        (nn.HuberLoss("none", 0.4), torch.nn.HuberLoss("none", 0.4),
         X, Y),
        (nn.BCELoss(weight=w), torch.nn.BCELoss(weight=torch.tensor(W3)), P, Q),
        (nn.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(
            pos_weight=torch.tensor(W3)), X, Q),
        (nn.KLDivLoss(reduction="batchmean", log_target=True),
         torch.nn.KLDivLoss(reduction="batchmean", log_target=True), X, Y),
        (nn.NLLLoss(weight=jg.tensor(W4), ignore_index=1),
         torch.nn.NLLLoss(weight=torch.tensor(W4), ignore_index=1), LOGITS, LABELS),
        (nn.CrossEntropyLoss(weight=jg.tensor(W4), label_smoothing=0.3),
         torch.nn.CrossEntropyLoss(weight=torch.tensor(W4), label_smoothing=0.3),
         LOGITS, IGNORED),
    ]
    for ours, theirs, a, b in pairs:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        x = jg.tensor(a, requires_grad=True)
        tx = torch.tensor(a, requires_grad=True)
        out, tout = ours(x, jg.tensor(b)), theirs(tx, torch.tensor(b))
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_module_defaults_and_buffers():
    loss = nn.BCEWithLogitsLoss(weight=jg.ones(3), pos_weight=jg.full((3,), 2.0))
    assert loss.reduction == "mean" and list(loss.state_dict()) == ["weight", "pos_weight"]
    assert nn.SmoothL1Loss().beta == 1.0 and nn.HuberLoss().delta == 1.0
    assert nn.KLDivLoss().log_target is False and list(nn.BCELoss().state_dict()) == []


# --- without torch: hand-computed values, gradchecks, messages ---------------------------

def test_values_by_hand(each_mode):
    x, y = jg.tensor([0.0, 0.5, 3.0]), jg.tensor([0.2, 0.5, 1.0])
    assert math.isclose(F.l1_loss(x, y).item(), (0.2 + 0 + 2) / 3, rel_tol=1e-6)
    assert F.smooth_l1_loss(x, y, reduction="none").tolist() == pytest.approx(
        [0.5 * 0.04, 0.0, 1.5])
    assert F.huber_loss(x, y, reduction="none", delta=0.5).tolist() == pytest.approx(
        [0.5 * 0.04, 0.0, 0.5 * (2 - 0.25)])
    p, t = jg.tensor([0.0, 1.0, 0.25, 0.0]), jg.tensor([0.0, 1.0, 1.0, 1.0])
    assert F.binary_cross_entropy(p, t, reduction="none").tolist() == pytest.approx(
        [0.0, 0.0, math.log(4), 100.0])
    logit = jg.tensor([0.0, 1000.0, -1000.0])
    assert F.binary_cross_entropy_with_logits(
        logit, jg.tensor([1.0, 1.0, 1.0]), reduction="none").tolist() == pytest.approx(
        [math.log(2), 0.0, 1000.0])
    kl = F.kl_div(jg.tensor([[math.log(0.5), math.log(0.5)]]), jg.tensor([[0.0, 1.0]]),
                  reduction="batchmean")
    assert kl.item() == pytest.approx(math.log(2))
    ce = F.cross_entropy(jg.zeros(2, 4), jg.tensor([1, 2]), label_smoothing=0.5)
    assert ce.item() == pytest.approx(math.log(4))  # uniform logits: log C, however smoothed
    weighted = F.nll_loss(jg.tensor([[-1.0, -2.0], [-3.0, -4.0]]), jg.tensor([0, 1]),
                          weight=jg.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((1 * 1 + 3 * 4) / 4)


def test_bce_gradient_is_finite_at_saturated_probabilities(each_mode):
    p = jg.tensor([0.0, 1.0, 0.0, 1.0], dtype=jg.float32, requires_grad=True)
    F.binary_cross_entropy(p, jg.tensor([0.0, 1.0, 1.0, 0.0]), reduction="sum").backward()
    assert p.grad.tolist() == pytest.approx([0.0, 0.0, -1e12, 1e12], rel=1e-6)
    assert p.grad_fn is None and p.is_leaf


GRADCHECKED = [
    (F.l1_loss, (X, Y + 0.01), {}),
    (F.smooth_l1_loss, (X, Y), {"beta": 0.7}),
    (F.huber_loss, (X, Y), {"delta": 0.7}),
    (F.binary_cross_entropy, (P, Q), {"weight": W3}),
    (F.binary_cross_entropy_with_logits, (X, Q), {"pos_weight": W3}),
    (F.kl_div, (np.log(P), Q), {"reduction": "batchmean"}),
    (F.kl_div, (np.log(P), np.log(Q)), {"log_target": True, "reduction": "sum"}),
    (F.cross_entropy, (LOGITS, PROBS), {"label_smoothing": 0.1, "weight": W4}),
]


@pytest.mark.parametrize("fn, args, kwargs", GRADCHECKED,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(GRADCHECKED)])
def test_gradients_and_second_derivatives(each_mode, fn, args, kwargs):
    kwargs = {k: jg.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    inputs = [jg.tensor(a, requires_grad=True) for a in args]
    assert jg.autograd.gradcheck(lambda *a: fn(*a, **kwargs), inputs)
    assert jg.autograd.gradgradcheck(lambda *a: fn(*a, **kwargs), inputs)


def test_class_losses_gradcheck(each_mode):
    w = jg.tensor(W4)
    for fn in (F.nll_loss, F.cross_entropy):
        for labels, extra in ((IGNORED, {"weight": w}),
                              (IMAGE_LABELS, {"label_smoothing": 0.2, "ignore_index": 0})):
            x = jg.tensor(LOGITS if labels is IGNORED else IMAGE, requires_grad=True)
            if fn is F.nll_loss:
                extra = {k: v for k, v in extra.items() if k != "label_smoothing"}
            assert jg.autograd.gradcheck(lambda x: fn(x, jg.tensor(labels), **extra), [x])


def error_of(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value).__name__, str(info.value)


x3, y3 = jg.rand(3), jg.rand(3)
ERRORS = [
    ("l1 reduction", lambda F, t: F.l1_loss(t.rand(3), t.rand(3), reduction="bad"),
     "ValueError", "bad is not a valid value for reduction"),
    ("huber reduction", lambda F, t: F.huber_loss(t.rand(3), t.rand(3), reduction="avg"),
     "ValueError", "avg is not a valid value for reduction"),
    ("kl reduction", lambda F, t: F.kl_div(t.rand(3), t.rand(3), reduction="bad"),
     "ValueError", "bad is not a valid value for reduction"),
    ("beta", lambda F, t: F.smooth_l1_loss(t.rand(3), t.rand(3), beta=-1.0),
     "RuntimeError", "smooth_l1_loss does not support negative values for beta."),
    ("delta", lambda F, t: F.huber_loss(t.rand(3), t.rand(3), delta=0.0),
     "RuntimeError", "huber_loss does not support non-positive values for delta."),
    ("bce size", lambda F, t: F.binary_cross_entropy(t.rand(3), t.rand(3, 1)),
     "ValueError", "Using a target size (torch.Size([3, 1])) that is different to the input "
     "size (torch.Size([3])) is deprecated. Please ensure they have the same size."),
    ("bce range", lambda F, t: F.binary_cross_entropy(t.rand(3) + 1, t.rand(3)),
     "RuntimeError", "all elements of input should be between 0 and 1"),
    ("bce nan", lambda F, t: F.binary_cross_entropy(t.rand(3) * float("nan"), t.rand(3)),
     "RuntimeError", "all elements of input should be between 0 and 1"),
    ("bce dtype", lambda F, t: F.binary_cross_entropy(t.rand(3), t.rand(3, dtype=t.float64)),
     "RuntimeError", "Found dtype Double but expected Float"),
    ("bce reduction", lambda F, t: F.binary_cross_entropy(t.rand(3), t.rand(3), reduction="x"),
     "ValueError", "x is not a valid value for reduction"),
    ("logits size", lambda F, t: F.binary_cross_entropy_with_logits(t.rand(3), t.rand(2)),
     "ValueError", "Target size (torch.Size([2])) must be the same as input size "
     "(torch.Size([3]))"),
    ("nll range", lambda F, t: F.nll_loss(t.rand(3, 5), t.tensor([1, 5, 0])),
     "IndexError", "Target 5 is out of bounds."),
    ("nll negative", lambda F, t: F.nll_loss(t.rand(3, 5), t.tensor([1, -1, 0])),
     "IndexError", "Target -1 is out of bounds."),
    ("nll weight", lambda F, t: F.nll_loss(t.rand(3, 5), t.tensor([1, 2, 0]),
                                           weight=t.ones(3)),
     "RuntimeError", "weight tensor should be defined either for all 5 classes or no classes "
     "but got weight tensor of shape: [3]"),
    ("nll float target", lambda F, t: F.nll_loss(t.rand(3, 5), t.rand(3)),
     "RuntimeError", "expected target dtype to be Long or Byte, but got Float"),
    ("nll int32 target", lambda F, t: F.nll_loss(t.rand(3, 5), t.tensor([1, 2, 3],
                                                                         dtype=t.int32)),
     "RuntimeError", "expected target dtype to be Long or Byte, but got Int"),
    ("nll batch", lambda F, t: F.nll_loss(t.rand(3, 5), t.tensor([1, 2])),
     "ValueError", "Expected input batch_size (3) to match target batch_size (2)."),
    ("nll image", lambda F, t: F.nll_loss(t.rand(2, 5, 3), t.tensor([[1, 2], [0, 0]])),
     "RuntimeError", "Expected target size [2, 3], got [2, 2]"),
    ("ce range", lambda F, t: F.cross_entropy(t.rand(3, 5), t.tensor([1, 7, 0]),
                                              label_smoothing=0.1),
     "IndexError", "Target 7 is out of bounds."),
    ("ce weighted range", lambda F, t: F.cross_entropy(t.rand(3, 5), t.tensor([1, 7, 0]),
                                                       weight=t.ones(5)),
     "IndexError", "Target 7 is out of bounds."),
    ("ce smoothing", lambda F, t: F.cross_entropy(t.rand(3, 5), t.tensor([1, 2, 3]),
                                                  label_smoothing=1.5),
     "RuntimeError", "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    ("ce probability shape", lambda F, t: F.cross_entropy(t.rand(3, 5), t.rand(3, 4)),
     "RuntimeError", "0D or 1D target tensor expected, multi-target not supported"),
    ("ce ignore with probabilities", lambda F, t: F.cross_entropy(
        t.rand(3, 5), t.rand(3, 5), ignore_index=1),
     "RuntimeError", "ignore_index is not supported for floating point target"),
    ("ce weight", lambda F, t: F.cross_entropy(t.rand(3, 5), t.tensor([1, 2, 3]),
                                               weight=t.ones(4)),
     "RuntimeError", "weight tensor should be defined either for all 5 classes or no classes "
     "but got weight tensor of shape: [4]"),
]


@pytest.mark.parametrize("name, make, kind, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(each_mode, name, make, kind, message):
    def ours():
        out = make(F, jg)
        out.sum().item()  # lazy mode may report a bad value only when the value is made
    assert error_of(ours) == (kind, message.replace("torch.", "jitgrad."))


@pytest.mark.parametrize("name, make, kind, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages_are_pytorchs(torch, name, make, kind, message):
    assert error_of(lambda: make(torch.nn.functional, torch)) == (kind, message)
