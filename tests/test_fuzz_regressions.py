"""Minimal repros of the mismatch classes the random-program fuzzer found against PyTorch
(tests/FUZZ_FINDINGS.md), each run through torch and through jitgrad in both modes.

A repro is a function ``fn(L)`` written once against the common API (``L`` is ``torch``
or ``jitgrad``); it returns the values to compare (tensors, grad_fn names, numbers).
The outcome compared is that list, or the error it raised (type and message, with
``torch`` read as ``jitgrad``). Skipped without torch.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import jitgrad as jg  # noqa: E402

MODES = ("lazy", "eager")


def _plain(v):
    if isinstance(v, (torch.Tensor, jg.Tensor)):
        return ("tensor", tuple(v.shape), str(v.dtype).split(".")[-1], v.detach().numpy().copy())
    if isinstance(v, (list, tuple)):
        return type(v)(_plain(x) for x in v)
    return v


def _outcome(fn, lib, mode=None):
    previous = jg.get_mode()
    if mode is not None:
        jg.set_mode(mode)
    try:
        return "ok", _plain(fn(lib))
    except Exception as e:  # noqa: BLE001 - the error is the outcome compared
        return "error", (type(e).__name__, str(e).replace("torch", "jitgrad"))
    finally:
        jg.set_mode(previous)


def _same(a, b):
    if isinstance(a, tuple) and a and a[0] == "tensor":
        return (isinstance(b, tuple) and b[:3] == a[:3]
                and np.allclose(b[3], a[3], rtol=1e-6, atol=1e-7, equal_nan=True))
    if isinstance(a, (list, tuple)):
        return (isinstance(b, type(a)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    return a == b


def check(fn, mode):
    expected = _outcome(fn, torch)
    got = _outcome(fn, jg, mode)
    assert _same(expected, got), f"torch: {expected}\njitgrad ({mode}): {got}"
    return got


def _name(t):
    return None if t.grad_fn is None else t.grad_fn.name()


def _leaf(L, *shape, dtype="float32"):
    data = np.arange(1, 1 + int(np.prod(shape)), dtype=dtype).reshape(shape) / 4 - 0.6
    return L.tensor(data, requires_grad=True)


# --- inplace_on_saved: an in-place change of a tensor the backward needs must raise -------

def _modified_output(make):
    """``y = make(L, x)``, then ``y`` changed in place, then a backward through ``y``."""
    def fn(L):
        x = _leaf(L, 2, 3, dtype="float64")
        y = make(L, x * 1)
        y.mul_(2)
        y.sum().backward()
        return [x.grad]
    return fn


SAVED_OUTPUTS = {
    "prod": lambda L, x: x.prod(),          # PyTorch saves prod's result, jitgrad's VJP did not read it
    "prod dim": lambda L, x: x.prod(1),     # ProdBackward1: "output 0 of Prod1"
    "rpow": lambda L, x: 2 ** x,            # PowBackward2: "Pow2"
    "pow tensor": lambda L, x: x ** L.ones(3, dtype=L.float64),  # PowBackward1 saves its result
    "max": lambda L, x: x.max(),            # MaxBackward1: "Max1"
    "exp": lambda L, x: x.exp(),
    "std": lambda L, x: x.std(),
    "softmax": lambda L, x: x.softmax(1),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", sorted(SAVED_OUTPUTS))
def test_inplace_on_saved_output_raises(op, mode):
    kind, (name, msg) = check(_modified_output(SAVED_OUTPUTS[op]), mode)
    assert kind == "error" and "modified by an inplace operation" in msg


def _modified_input(make, change_second=False):
    def fn(L):
        x = _leaf(L, 3)
        a = x * 1
        b = L.tensor([0.5, 1.5, 2.5])
        y = make(L, a, b)
        (b if change_second else a).add_(1)
        y.sum().backward()
        return [x.grad]
    return fn


SAVED_INPUTS = {
    # (make, change the tensor without grad?): raise as PyTorch does, and only then
    "rpow exponent": (lambda L, a, b: 2 ** a, False),   # PyTorch saves the exponent
    "mul other": (lambda L, a, b: a * b, True),         # saved: a needs it
    "mul self": (lambda L, a, b: a * b, False),         # not saved: b needs no gradient
    "div self": (lambda L, a, b: a / b, False),
    "sub": (lambda L, a, b: a - b, False),              # sub saves nothing
    "clamp": (lambda L, a, b: a.clamp(0, 1), False),
    "prod": (lambda L, a, b: a.prod(), False),
    "log_softmax": (lambda L, a, b: a.log_softmax(0), False),  # saves its result only
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", sorted(SAVED_INPUTS))
def test_inplace_on_saved_input(op, mode):
    make, second = SAVED_INPUTS[op]
    check(_modified_input(make, second), mode)


def _view_names(L):
    x = _leaf(L, 1, 3)
    a = x * 1
    z = a.t()
    w = z * z      # saves the view z; a.add_ moves its version
    a.add_(1)      # PyTorch names the view's regenerated node AsStrided
    w.sum().backward()


def _copyslices_name(L):
    x = _leaf(L, 2, 3)
    a = x * 1
    w = a * a
    a[1:].add_(1)  # a is now the output of CopySlices
    w.sum().backward()


def _clamp1_name(L):
    x = _leaf(L, 3)
    a = x * 1
    y = a.sin()          # saves a
    a.clamp_(0.2, 0.6)   # a is now the output of ClampBackward1: "output 0 of Clamp1"
    y.sum().backward()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fn", [_view_names, _copyslices_name, _clamp1_name])
def test_inplace_on_saved_message_names_the_node_as_torch(fn, mode):
    kind, (name, msg) = check(fn, mode)
    assert kind == "error"


# --- inplace_on_view_leaf ----------------------------------------------------------------

def _view_made_leaf(write):
    def fn(L):
        w = L.zeros(5)[1::2].requires_grad_()
        write(L, w)
        return [w]
    return fn


VIEW_LEAF_WRITES = {
    "add_": lambda L, w: w.add_(1),
    "view of it": lambda L, w: w[1:].add_(1),
    "setitem": lambda L, w: w.__setitem__(slice(1, None), 2.0),
    "setitem mask": lambda L, w: w.__setitem__(L.tensor([True, False]), 2.0),
    "leaf's slice": lambda L, w: L.zeros(3, requires_grad=True)[1:].add_(1),
    "leaf itself": lambda L, w: L.zeros(3, requires_grad=True).add_(1),
    "contiguous of a transposed row": lambda L, w: (
        L.zeros(1, 2, requires_grad=True).transpose(0, 1).contiguous().clamp_(0, 1)),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("write", sorted(VIEW_LEAF_WRITES))
def test_inplace_on_view_made_leaf_raises(write, mode):
    kind, _ = check(_view_made_leaf(VIEW_LEAF_WRITES[write]), mode)
    assert kind == "error"


@pytest.mark.parametrize("mode", MODES)
def test_inplace_on_view_leaf_under_no_grad_and_on_results(mode):
    def fn(L):
        w = L.zeros(5)[1::2].requires_grad_()
        with L.no_grad():
            w.add_(1)
        y = w * 2
        y.add_(1)
        y.sum().backward()
        return [w, _name(y), w.grad]
    check(fn, mode)


def _partial_backward(L):
    """The backward raises at exp's node; w's gradient was complete before it ran, so
    PyTorch has accumulated it (x's never arrives)."""
    x, w = _leaf(L, 3), _leaf(L, 3)
    a = x.exp()
    a.add_(1)
    loss = (a * 2 + w).sum()
    try:
        loss.backward()
    except RuntimeError as e:
        return ["raised" if "modified by an inplace operation" in str(e) else str(e),
                w.grad, x.grad]
    return ["no error"]


@pytest.mark.parametrize("mode", MODES)
def test_inplace_on_saved_error_leaves_ready_gradients_accumulated(mode):
    kind, (raised, w_grad, x_grad) = check(_partial_backward, mode)
    assert raised == "raised" and x_grad is None


# --- inplace_on_matmul_result: a batched matmul's result is no view (_unsafe_view) ---------

@pytest.mark.parametrize("mode", MODES)
def test_inplace_on_matmul_result(mode):
    def fn(L):
        a, b = _leaf(L, 2, 3, 4, dtype="float64"), _leaf(L, 4, 2, dtype="float64")
        c = a @ b
        d = c * 1
        c.mul_(3)
        names = [_name(c)]
        (c * d).sum().backward()
        x = _leaf(L, 2, 3)
        y = (x * 1).t().reshape(-1)   # a reshape that copies: no view either
        y.add_(1)
        names.append(_name(y))
        y.sum().backward()
        return [names, c, a.grad, b.grad, x.grad]
    check(fn, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("other", [(2, 3), (4, 2, 3)])
def test_inplace_on_vector_matmul_result(other, mode):
    def fn(L):
        a, b = _leaf(L, 2, dtype="float64"), _leaf(L, *other, dtype="float64")
        c = a @ b          # PyTorch squeezes its temporary in place: c is no view
        c.clamp_(-0.5, 0.9)
        c.sum().backward()
        return [_name(c), c._base is None, a.grad, b.grad]
    check(fn, mode)


# --- setitem_empty: writing an empty slice still records CopySlices ----------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", [(slice(1, None, 2),), (slice(None), slice(2, None))])
def test_setitem_empty_slice_records_copyslices(key, mode):
    def fn(L):
        x = _leaf(L, 1, 2)
        y = x * 1
        y[key] = 0.5
        y.sum().backward()
        return [type(y.grad_fn).__name__, y, x.grad]
    check(fn, mode)


# --- view_of_0d_reduction, inplace_on_0d_reduction (eager: a numpy scalar, no 0-d array) -

ZERO_D = {
    "view": lambda L, x: [x.mean().view((1, 1, 1))],
    "amax grad": lambda L, x: list(L.autograd.grad(x.mean().amax(), [x])),
    "sub_ alpha": lambda L, x: [x.mean().sub_(L.tensor(0.5, dtype=L.float64), alpha=2)],
    "mul_ backward": lambda L, x: [_backward_of(x, x.mean().mul_(2))],
    "setitem": lambda L, x: [_setitem0(x.mean())],
}


def _backward_of(x, s):
    s.backward()
    return x.grad


def _setitem0(s):
    s[()] = 2.0
    return s


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what", sorted(ZERO_D))
def test_0d_reduction_is_a_tensor_of_its_own(what, mode):
    check(lambda L: ZERO_D[what](L, _leaf(L, 2, 3, dtype="float64")), mode)


# --- full_slice: a tuple key that slices nothing records AliasBackward0 -------------------

FULL_SLICE_KEYS = [
    (slice(None), slice(0, None, 1)), (slice(0, None, 1),), slice(0, None, 1), slice(None),
    (slice(None), slice(None)), (Ellipsis, slice(0, 3)), (slice(None), slice(0, 5)),
    (None, slice(0, 2)), (slice(-2, 2),), (slice(None), slice(-3, None)), (0, slice(None)),
    (slice(0, 2), None), (slice(0, 9), slice(0, 3)), (Ellipsis,), Ellipsis,
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", FULL_SLICE_KEYS, ids=str)
def test_full_slice_grad_fn(key, mode):
    def fn(L):
        x = _leaf(L, 2, 3)
        y = x[key]
        y.sum().backward()
        return [_name(y), y, x.grad]
    check(fn, mode)


# --- matmul_mixed_dtype: PyTorch's message for each path -------------------------------

MIXED = [((2, 3), (3,)), ((2, 3), (3, 2)), ((3,), (3, 2)), ((3,), (3,)), ((2, 2, 3), (3, 2)),
         ((2, 3), (2, 3, 2)), ((2, 2, 3), (2, 3, 2)), ((2, 2, 3), (3,)), ((3,), (2, 3, 2))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("first64", [False, True])
@pytest.mark.parametrize("shapes", MIXED, ids=str)
def test_matmul_mixed_dtype_message(shapes, first64, mode):
    def fn(L):
        a = L.ones(*shapes[0], dtype=L.float64 if first64 else L.float32)
        b = L.ones(*shapes[1], dtype=L.float32 if first64 else L.float64)
        return [a @ b]
    kind, _ = check(fn, mode)
    assert kind == "error"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["bmm", "mv"])
def test_bmm_mv_mixed_dtype_message(op, mode):
    def fn(L):
        if op == "bmm":
            return [L.bmm(L.ones(2, 2, 3), L.ones(2, 3, 2, dtype=L.float64))]
        return [L.mv(L.ones(2, 3, dtype=L.float64), L.ones(3))]
    kind, _ = check(fn, mode)
    assert kind == "error"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", [((2, 3), (4, 3, 2)), ((4, 2, 3), (3, 2)), ((3,), (4, 3, 2)),
                                    ((4, 2, 3), (3,)), ((2, 4, 2, 3), (3, 2))], ids=str)
def test_batched_matmul_mixed_dtype_message_follows_torch_folding(shapes, mode):
    """PyTorch names mm/addmv when it folds the batch into rows (the smaller operand needs
    a gradient, or the larger's batch dims are contiguous and the smaller is no matrix),
    bmm otherwise: the message depends on requires_grad and on the larger one's strides."""
    def fn(L):
        out = []
        for grad_small, transposed, first64 in np.ndindex(2, 2, 2):
            def make(shape, dtype, grad):
                if transposed and len(shape) >= 3:
                    x = L.ones(*shape[:-3], shape[-2], shape[-3], shape[-1],
                               dtype=dtype).transpose(-2, -3)   # batch dims not contiguous
                else:
                    x = L.ones(*shape, dtype=dtype)
                return x.requires_grad_(bool(grad))
            d1, d2 = (L.float64, L.float32) if first64 else (L.float32, L.float64)
            small_first = len(shapes[0]) < len(shapes[1])
            a = make(shapes[0], d1, grad_small and small_first)
            b = make(shapes[1], d2, grad_small and not small_first)
            try:
                a @ b
                out.append("ok")
            except RuntimeError as e:
                out.append(str(e))
        return out
    check(fn, mode)
