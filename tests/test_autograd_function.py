"""Custom ``jitgrad.autograd.Function``: PyTorch's semantics, checked against PyTorch.

Each custom Function is defined once by a factory over the library (``jitgrad``
or ``torch``), so the same code runs on both: values, gradients, ``grad_fn``
names, versions, error types and messages (``torch`` read as ``jitgrad``) are
compared where PyTorch is installed; every test also checks jitgrad against
hand-computed or float64 NumPy values, so the suite means something without
PyTorch (only the comparisons skip). Runs in the pass's mode (lazy or eager).
"""
import math
import re
import types
import warnings

import numpy as np
import pytest

import jitgrad as jg
from jitgrad.autograd.function import once_differentiable as jg_once

try:
    import torch
    from torch.autograd.function import once_differentiable as torch_once
except ImportError:  # the parity checks skip; the rest runs
    torch = None


@pytest.fixture(autouse=True)
def _grad_mode_on():
    """Every test starts and ends with grad mode on (a failing test must not leak it)."""
    jg.set_grad_enabled(True)
    yield
    jg.set_grad_enabled(True)
    if torch is not None:
        torch.set_grad_enabled(True)


def arr(t):
    return np.array(t.detach().tolist(), dtype=np.float64)


def _np(t):
    return arr(t) if isinstance(t, (jg.Tensor, getattr(torch, "Tensor", jg.Tensor))) \
        else np.asarray(t, dtype=np.float64)


def close(a, b, rtol=1e-6, atol=1e-6):
    assert a is not None and b is not None
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol)


def fns(lib):
    """The custom Functions of these tests, written against ``lib`` (jitgrad or torch)."""
    F = lib.autograd.Function
    once = jg_once if lib is jg else torch_once

    class Scale(F):  # a tensor and a non-tensor argument, an attribute on ctx
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x * x * k

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g * ctx.k, None

    class Cube(F):  # double backward: backward in library ops
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 3 * x ** 2 * g

    class ExpOut(F):  # saves its output
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y

    class MulAdd(F):  # two tensor inputs, needs_input_grad
        @staticmethod
        def forward(ctx, x, y, k):
            ctx.save_for_backward(x, y)
            ctx.seen = ctx.needs_input_grad
            return x * y + k

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            ctx.seen_backward = ctx.needs_input_grad
            gx = g * y if ctx.needs_input_grad[0] else None
            gy = g * x if ctx.needs_input_grad[1] else None
            return gx, gy, None

    class SplitTwo(F):  # two outputs; zeros for an unused one (materialized)
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2, x.sin()

        @staticmethod
        def backward(ctx, g1, g2):
            x, = ctx.saved_tensors
            ctx.got = (g1, g2)
            return g1 * 2 + g2 * x.cos()

    class SplitNoMat(F):  # set_materialize_grads(False): None for an unused output
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            ctx.got = (g1, g2)
            g = None
            if g1 is not None:
                g = g1 * 2
            if g2 is not None:
                g = g2 * 3 if g is None else g + g2 * 3
            return g

    class NonDiff(F):  # mark_non_differentiable, an integer output, a non-tensor output
        @staticmethod
        def forward(ctx, x):
            mask = (x > 0).to(x.dtype)
            ctx.mark_non_differentiable(mask)
            ctx.save_for_backward(mask)
            return x * mask, mask, (x > 0).long(), "label"

        @staticmethod
        def backward(ctx, g, gmask, glong, glabel):
            mask, = ctx.saved_tensors
            ctx.got = (gmask, glong, glabel)
            return g * mask

    class MulInPlace(F):  # mark_dirty
        @staticmethod
        def forward(ctx, x):
            x.mul_(3)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 3

    class DirtyNotReturned(F):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g

    class PassThrough(F):  # outputs that are inputs, returned as is
        @staticmethod
        def forward(ctx, x, y):
            return x, y

        @staticmethod
        def backward(ctx, gx, gy):
            return gx * 2, gy * 3

    class SetupCtx(F):  # forward without ctx, setup_context, vjp
        @staticmethod
        def forward(x, k=2.0):
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.k = inputs[1]
            ctx.n_inputs = len(inputs)
            ctx.out_shape = tuple(output.shape)

        @staticmethod
        def vjp(ctx, g):
            return g * ctx.k, None

    class SquareOnce(F):  # once_differentiable
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 2

        @staticmethod
        @once
        def backward(ctx, g):
            x, = ctx.saved_tensors
            ctx.grad_mode = lib.is_grad_enabled()
            return 2 * x * g

    class LegendrePolynomial3(F):  # PyTorch's tutorial
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    # misuse
    class TooFew(F):
        @staticmethod
        def forward(ctx, x, y):
            return x + y

        @staticmethod
        def backward(ctx, g):
            return g

    class TooMany(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g

    class ExtraNones(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, None, None

    class GradForNumber(F):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g, g

    class WrongShape(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return lib.ones(5)

    class Broadcast(F):  # a gradient the input broadcasts to: summed back
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return (g * 2).expand(4, 3)

    class WrongDtype(F):  # cast back to the input's dtype
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return (g * 2).double()

    class NotATensor(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return 3

    class NoBackward(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    class NoForward(F):
        pass

    class Both(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g

        @staticmethod
        def vjp(ctx, g):
            return g

    class Legacy(F):
        def forward(self, x):
            return x * 2

        def backward(self, g):
            return g

    class SaveNumber(F):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, 3)
            return x * 2

    class CtxForwardWithSetup(F):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def setup_context(ctx, inputs, output):
            pass

        @staticmethod
        def backward(ctx, g):
            return g

    return types.SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, type)})


JG = fns(jg)
TH = fns(torch) if torch is not None else None


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (the type is what is compared)
        return type(e).__name__, str(e)
    return None


def same_error(jg_fn, torch_fn, contains):
    """Both raise, the same type and message (``torch`` read as ``jitgrad``); jitgrad's
    message contains ``contains``, checked even without PyTorch."""
    got = error_of(jg_fn)
    assert got is not None, "jitgrad did not raise"
    assert contains in got[1], got
    if torch is not None:
        want = error_of(torch_fn)
        assert want is not None
        # PyTorch's names (``torch.autograd...``, ``[torch.FloatTensor``), not its web
        # addresses (``pytorch.org/...#torch.autograd.Function``)
        assert got == (want[0], re.sub(r"(?<![\w/#])torch\.", "jitgrad.", want[1])), (got, want)
    return got


def pair(values, dtype=None, requires_grad=True):
    """The same leaf in jitgrad and (when installed) torch."""
    a = jg.tensor(values, dtype=dtype or jg.float32, requires_grad=requires_grad)
    b = None
    if torch is not None:
        b = torch.tensor(values, dtype=getattr(torch, (dtype or jg.float32).name),
                         requires_grad=requires_grad)
    return a, b


X = [0.5, -1.25, 2.0]


# --- the basics -------------------------------------------------------------------

def test_forward_backward_with_a_number_argument():
    x, tx = pair(X)
    y = JG.Scale.apply(x, 3.0)
    close(y, 3 * np.array(X) ** 2)
    assert y.requires_grad and not y.is_leaf
    assert type(y.grad_fn).__name__ == "ScaleBackward"
    assert repr(y.grad_fn).startswith("<jitgrad.autograd.function.ScaleBackward object at 0x")
    assert y.grad_fn.next_functions == ((x._grad_accumulator(), 0),)
    assert y.grad_fn.k == 3.0  # the node is the ctx
    assert y.grad_fn.needs_input_grad == (True, False)
    y.backward(jg.tensor([1.0, 2.0, 3.0]))
    close(x.grad, 6 * np.array(X) * [1.0, 2.0, 3.0])
    if torch is not None:
        ty = TH.Scale.apply(tx, 3.0)
        assert type(ty.grad_fn).__name__ == type(y.grad_fn).__name__
        assert repr(y.grad_fn).split(" object")[0] == \
            repr(ty.grad_fn).split(" object")[0].replace("torch", "jitgrad")
        assert ty.grad_fn.needs_input_grad == y.grad_fn.needs_input_grad
        ty.backward(torch.tensor([1.0, 2.0, 3.0]))
        close(y, ty)
        close(x.grad, tx.grad)


def test_grad_fn_names_match_pytorch():
    names = ["Scale", "Cube", "ExpOut", "SplitTwo", "LegendrePolynomial3", "SetupCtx"]
    for name in names:
        x, _ = pair(X)
        out = getattr(JG, name).apply(x) if name != "Scale" else JG.Scale.apply(x, 1.0)
        out = out[0] if isinstance(out, tuple) else out
        assert type(out.grad_fn).__name__ == name + "Backward"
        if torch is not None:
            tx = torch.tensor(X, requires_grad=True)
            tout = getattr(TH, name).apply(tx) if name != "Scale" else TH.Scale.apply(tx, 1.0)
            tout = tout[0] if isinstance(tout, tuple) else tout
            assert type(tout.grad_fn).__name__ == name + "Backward"


def test_two_tensor_inputs_needs_input_grad_and_edges():
    x, tx = pair(X)
    w, tw = pair([2.0, 3.0, 4.0], requires_grad=False)
    y = JG.MulAdd.apply(x, w, 1.5)
    fn = y.grad_fn
    assert fn.seen == (True, False, False)  # in forward already
    assert fn.next_functions[1] == (None, 0)
    assert len(fn.next_functions) == 2  # one edge per tensor argument
    y.sum().backward()
    assert fn.seen_backward == (True, False, False)
    close(x.grad, [2.0, 3.0, 4.0])
    assert w.grad is None
    if torch is not None:
        ty = TH.MulAdd.apply(tx, tw, 1.5)
        assert ty.grad_fn.seen == fn.seen
        assert ty.grad_fn.next_functions[1] == (None, 0)
        ty.sum().backward()
        close(y, ty)
        close(x.grad, tx.grad)


def test_no_grad_and_inputs_without_grad_make_no_node():
    x, _ = pair(X)
    with jg.no_grad():
        y = JG.MulAdd.apply(x, x, 0.0)
    assert not y.requires_grad and y.grad_fn is None
    close(y, np.array(X) ** 2)
    z = JG.MulAdd.apply(x.detach(), x.detach(), 1.0)
    assert not z.requires_grad and z.grad_fn is None
    if torch is not None:
        tx = torch.tensor(X, requires_grad=True)
        with torch.no_grad():
            ty = TH.MulAdd.apply(tx, tx, 0.0)
        assert ty.grad_fn is None and not ty.requires_grad


def test_forward_runs_without_grad_mode():
    seen = []

    class Probe(jg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(jg.is_grad_enabled())
            y = x * 2
            seen.append(y.requires_grad)
            return y

        @staticmethod
        def backward(ctx, g):
            seen.append(jg.is_grad_enabled())
            return g * 2

    x, _ = pair(X)
    Probe.apply(x).sum().backward()
    assert seen == [False, False, False]
    assert jg.is_grad_enabled()
    close(x.grad, [2.0, 2.0, 2.0])


# --- saved tensors ----------------------------------------------------------------

def test_saved_input_modified_in_place_raises():
    x, tx = pair(X)

    def run(lib, fs, leaf):
        a = leaf * 1
        y = fs.Scale.apply(a, 2.0)
        a.add_(1)
        y.sum().backward()
    got = same_error(lambda: run(jg, JG, x), lambda: run(torch, TH, tx),
                     "one of the variables needed for gradient computation has been modified "
                     "by an inplace operation: [jitgrad.FloatTensor [3]], which is output 0 of "
                     "Add")
    assert "is at version 1; expected version 0 instead" in got[1]


def test_saved_output_modified_in_place_raises():
    x, tx = pair(X)

    def run(fs, leaf):
        y = fs.ExpOut.apply(leaf)
        y.mul_(2)
        y.sum().backward()
    same_error(lambda: run(JG, x), lambda: run(TH, tx),
               "[jitgrad.FloatTensor [3]], which is output 0 of ExpOut, is at version 1; "
               "expected version 0 instead")


def test_saved_output_keeps_its_grad_fn_and_gradient():
    x, tx = pair(X)
    y = JG.ExpOut.apply(x)
    saved, = y.grad_fn.saved_tensors
    assert saved.grad_fn is y.grad_fn and saved._version == y._version == 0
    close(saved, np.exp(X))
    y.sum().backward()
    close(x.grad, np.exp(X))
    if torch is not None:
        TH.ExpOut.apply(tx).sum().backward()
        close(x.grad, tx.grad)


def test_saved_tensors_freed_after_backward_and_kept_with_retain_graph():
    x, tx = pair(X)

    def run(fs, leaf):
        y = fs.Scale.apply(leaf, 1.0)
        y.sum().backward(retain_graph=True)
        y.sum().backward()  # a second time, with the saved tensors still there
        y.sum().backward()
    same_error(lambda: run(JG, x), lambda: run(TH, tx),
               "Trying to backward through the graph a second time")
    close(x.grad, 4 * np.array(X))  # two passes accumulated before the error
    if torch is not None:
        close(x.grad, tx.grad)
        ty = TH.Scale.apply(tx, 1.0)
        ty.sum().backward()
    y = JG.Scale.apply(x, 1.0)
    assert y.grad_fn.saved_tensors[0] is x
    y.sum().backward()
    same_error(lambda: y.grad_fn.saved_tensors, lambda: ty.grad_fn.saved_tensors,
               "directly access saved tensors after they have already been freed")


def test_saved_none_and_saved_tensors_inside_forward():
    seen = []

    class SaveNone(jg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x, None)
            seen.append(ctx.saved_tensors)  # () until forward returns, as in PyTorch
            return x * 2

        @staticmethod
        def backward(ctx, g):
            x, none = ctx.saved_tensors
            seen.append(none)
            return g * 2

    x, _ = pair(X)
    SaveNone.apply(x).sum().backward()
    assert seen == [(), None]
    close(x.grad, [2.0, 2.0, 2.0])


def test_save_for_backward_rejects_non_tensors():
    x, tx = pair(X)
    same_error(lambda: JG.SaveNumber.apply(x), lambda: TH.SaveNumber.apply(tx),
               "save_for_backward can only save variables, but argument 1 is of type int")


# --- several outputs, materialized gradients, non-differentiable outputs -------------

def test_two_outputs_one_used_gets_zeros():
    x, tx = pair(X)
    a, b = JG.SplitTwo.apply(x)
    assert a.grad_fn is b.grad_fn and b._output_nr == 1
    b.sum().backward()
    g1, g2 = a.grad_fn.got
    close(g1, [0.0, 0.0, 0.0])
    close(g2, [1.0, 1.0, 1.0])
    close(x.grad, np.cos(X))
    a, b = JG.SplitTwo.apply(x)
    (a * 3 + b).sum().backward()
    close(x.grad, 2 * np.cos(X) + 6)
    if torch is not None:
        ta, tb = TH.SplitTwo.apply(tx)
        tb.sum().backward()
        ta, tb = TH.SplitTwo.apply(tx)
        (ta * 3 + tb).sum().backward()
        close(x.grad, tx.grad)
        close(a, ta)
        close(b, tb)


def test_set_materialize_grads_false_passes_none():
    x, tx = pair(X)
    a, b = JG.SplitNoMat.apply(x)
    b.sum().backward()
    g1, g2 = a.grad_fn.got
    assert g1 is None
    close(g2, [1.0, 1.0, 1.0])
    close(x.grad, [3.0, 3.0, 3.0])
    if torch is not None:
        ta, tb = TH.SplitNoMat.apply(tx)
        tb.sum().backward()
        assert ta.grad_fn.got[0] is None
        close(x.grad, tx.grad)


def test_non_differentiable_integer_and_non_tensor_outputs():
    x, tx = pair(X)
    y, mask, ints, label = JG.NonDiff.apply(x)
    assert y.requires_grad and not mask.requires_grad and mask.grad_fn is None
    assert not ints.requires_grad and ints.dtype is jg.int64
    assert label == "label"
    y.sum().backward()
    gmask, glong, glabel = y.grad_fn.got
    close(gmask, [0.0, 0.0, 0.0])  # materialized as zeros, as PyTorch does
    assert glong.dtype is jg.int64 and arr(glong).tolist() == [0, 0, 0]
    assert glabel is None
    close(x.grad, [1.0, 0.0, 1.0])
    if torch is not None:
        ty, tmask, tints, tlabel = TH.NonDiff.apply(tx)
        assert (tmask.requires_grad, tints.requires_grad, tlabel) == (False, False, "label")
        ty.sum().backward()
        assert ty.grad_fn.got[2] is None
        assert ty.grad_fn.got[1].dtype == torch.int64
        close(x.grad, tx.grad)


# --- in-place functions and inputs returned as is --------------------------------

def test_mark_dirty_returns_the_input_with_the_new_history():
    x, tx = pair(X)
    a = x * 1
    out = JG.MulInPlace.apply(a)
    assert out is a
    assert type(a.grad_fn).__name__ == "MulInPlaceBackward"
    assert a._version == 2  # the in-place op, then the marking
    close(a, 3 * np.array(X))
    (a * a).sum().backward()
    close(x.grad, 18 * np.array(X))
    if torch is not None:
        ta = tx * 1
        tout = TH.MulInPlace.apply(ta)
        assert tout is ta and ta._version == a._version
        (ta * ta).sum().backward()
        close(x.grad, tx.grad)


def test_mark_dirty_errors():
    x, tx = pair(X)
    same_error(lambda: JG.MulInPlace.apply(x), lambda: TH.MulInPlace.apply(tx),
               "a leaf Variable that requires grad has been used in an in-place operation.")
    same_error(lambda: JG.DirtyNotReturned.apply(x * 1),
               lambda: TH.DirtyNotReturned.apply(tx * 1),
               "Some elements marked as dirty during the forward method were not returned as "
               "output.")


def test_mark_dirty_on_a_view_is_recorded_on_its_base():
    b, tb = pair([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    c = b * 1
    row = JG.MulInPlace.apply(c[0])
    assert type(c.grad_fn).__name__ == "CopySlices"
    close(c, [[3.0, 6.0, 9.0], [4.0, 5.0, 6.0]])
    (c * c).sum().backward()
    close(b.grad, [[18.0, 36.0, 54.0], [8.0, 10.0, 12.0]])
    close(row, [3.0, 6.0, 9.0])
    if torch is not None:
        tc = tb * 1
        TH.MulInPlace.apply(tc[0])
        assert type(tc.grad_fn).__name__ == "CopySlices"
        (tc * tc).sum().backward()
        close(b.grad, tb.grad)


def test_inputs_returned_as_is():
    x, tx = pair(X)
    w, tw = pair([1.0, 1.0, 1.0], requires_grad=False)
    a = x * 1
    o1, o2 = JG.PassThrough.apply(a, w)
    assert o1 is not a and o2 is not w
    assert o1.grad_fn is o2.grad_fn and type(o1.grad_fn).__name__ == "PassThroughBackward"
    assert o2.requires_grad  # every float output of a recorded Function, as in PyTorch
    assert o1._version == a._version == 0
    close(o1, X)
    (o1 * 5 + o2).sum().backward()
    close(x.grad, [10.0, 10.0, 10.0])
    a.detach().add_(1)  # the output shares the input's storage and version counter
    assert o1._version == 1
    close(o1, np.array(X) + 1)
    o3, o4 = JG.PassThrough.apply(w, w)  # nothing requires grad
    assert o3 is not w and not o3.requires_grad and o3.grad_fn is None
    if torch is not None:
        ta = tx * 1
        t1, t2 = TH.PassThrough.apply(ta, tw)
        assert (t1 is ta, t2 is tw, t2.requires_grad) == (False, False, True)
        (t1 * 5 + t2).sum().backward()
        close(x.grad, tx.grad)


# --- setup_context, vjp, hooks ----------------------------------------------------

def test_setup_context_style_and_vjp():
    x, tx = pair(X)
    y = JG.SetupCtx.apply(x, 4.0)
    assert (y.grad_fn.k, y.grad_fn.n_inputs, y.grad_fn.out_shape) == (4.0, 2, (3,))
    y.sum().backward()
    close(x.grad, [4.0, 4.0, 4.0])
    z = JG.SetupCtx.apply(x)  # the default argument reaches setup_context
    assert (z.grad_fn.k, z.grad_fn.n_inputs) == (2.0, 2)
    close(z, 2 * np.array(X))
    if torch is not None:
        ty = TH.SetupCtx.apply(tx, 4.0)
        assert (ty.grad_fn.k, ty.grad_fn.n_inputs) == (4.0, 2)
        ty.sum().backward()
        close(x.grad, tx.grad)
        assert TH.SetupCtx.apply(tx).grad_fn.n_inputs == 2


def test_hooks_and_retain_grad_on_outputs():
    x, _ = pair(X)
    y = JG.Cube.apply(x)
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(arr(g).tolist()) or g * 2)
    y.sum().backward()
    assert seen == [[1.0, 1.0, 1.0]]
    close(y.grad, [2.0, 2.0, 2.0])
    close(x.grad, 6 * np.array(X) ** 2)


def test_chained_and_reused_functions():
    x, tx = pair(X)
    y = JG.Cube.apply(JG.Scale.apply(x, 0.5).tanh())
    z = (JG.Cube.apply(y) + y).mean()
    z.backward()
    u = 0.5 * np.array(X) ** 2
    t = np.tanh(u)
    dy = (9 * t ** 8 + 3 * t ** 2) / 3 * (1 - t ** 2) * np.array(X)
    close(x.grad, dy, rtol=1e-5)
    if torch is not None:
        ty = TH.Cube.apply(TH.Scale.apply(tx, 0.5).tanh())
        (TH.Cube.apply(ty) + ty).mean().backward()
        close(x.grad, tx.grad, rtol=1e-5)


# --- higher order -------------------------------------------------------------------

def test_double_backward_through_a_custom_backward():
    x, tx = pair(X, dtype=jg.float64)
    y = JG.Cube.apply(x)
    gx, = jg.autograd.grad(y.sum(), x, create_graph=True)
    close(gx, 3 * np.array(X) ** 2)
    assert gx.requires_grad and type(gx.grad_fn).__name__ == "MulBackward0"
    gx.sum().backward()
    close(x.grad, 6 * np.array(X))
    if torch is not None:
        ty = TH.Cube.apply(tx)
        tgx, = torch.autograd.grad(ty.sum(), tx, create_graph=True)
        assert type(tgx.grad_fn).__name__ == type(gx.grad_fn).__name__
        tgx.sum().backward()
        close(x.grad, tx.grad)


def test_double_backward_through_a_saved_output():
    x, _ = pair(X, dtype=jg.float64)
    y = JG.ExpOut.apply(x)
    gx, = jg.autograd.grad(y.sum(), x, create_graph=True)
    ggx, = jg.autograd.grad(gx.sum(), x)
    close(ggx, np.exp(X))


def test_gradcheck_and_gradgradcheck():
    x = jg.tensor([[0.3, -0.7, 1.1], [0.9, -1.3, 0.2]], dtype=jg.float64, requires_grad=True)
    w = jg.tensor([[1.5, 0.5, -2.0], [0.1, 0.8, 1.2]], dtype=jg.float64, requires_grad=True)
    check = jg.autograd.gradcheck
    assert check(lambda a: JG.Scale.apply(a, 1.7), (x,))
    assert check(lambda a: JG.Cube.apply(a), (x,))
    assert check(lambda a: JG.LegendrePolynomial3.apply(a), (x,))
    assert check(lambda a, b: JG.MulAdd.apply(a, b, 0.5), (x, w))
    assert check(lambda a: JG.SplitTwo.apply(a), (x,))
    assert jg.autograd.gradgradcheck(lambda a: JG.Cube.apply(a), (x,))
    assert jg.autograd.gradgradcheck(lambda a, b: JG.MulAdd.apply(a, b, 0.5), (x, w))
    assert jg.autograd.gradgradcheck(lambda a: JG.LegendrePolynomial3.apply(a), (x,))


def test_gradcheck_catches_a_wrong_backward():
    class Wrong(jg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g  # should be 2 x g

    x = jg.tensor([0.3, -0.7], dtype=jg.float64, requires_grad=True)
    with pytest.raises(jg.autograd.GradcheckError):
        jg.autograd.gradcheck(Wrong.apply, (x,))


def test_once_differentiable():
    x, tx = pair(X, dtype=jg.float64)
    y = JG.SquareOnce.apply(x)
    y.sum().backward()
    close(x.grad, 2 * np.array(X))
    assert y.grad_fn is not None
    v = jg.ones(3, dtype=jg.float64, requires_grad=True)
    y = JG.SquareOnce.apply(x)
    gx, = jg.autograd.grad(y, x, v, create_graph=True)
    assert y.grad_fn.grad_mode is False  # backward ran with grad mode off
    assert type(gx.grad_fn).__name__ == "Error" and gx.requires_grad
    close(gx, 2 * np.array(X))

    def twice(lib, fs, leaf):
        ones = lib.ones(3, dtype=lib.float64, requires_grad=True)
        g, = lib.autograd.grad(fs.SquareOnce.apply(leaf), leaf, ones, create_graph=True)
        g.sum().backward()
    same_error(lambda: twice(jg, JG, x), lambda: twice(torch, TH, tx),
               "trying to differentiate twice a function that was marked with "
               "@once_differentiable")
    if torch is not None:
        tv = torch.ones(3, dtype=torch.float64, requires_grad=True)
        tgx, = torch.autograd.grad(TH.SquareOnce.apply(tx), tx, tv, create_graph=True)
        assert type(tgx.grad_fn).__name__ == "Error"


# --- errors -------------------------------------------------------------------------

def _backward_of(fs_name, lib, fs, leaf, *extra):
    return lambda: getattr(fs, fs_name).apply(leaf, *extra).sum().backward()


def test_wrong_number_of_gradients():
    x, tx = pair(X)
    same_error(lambda: JG.TooFew.apply(x, x).sum().backward(),
               lambda: TH.TooFew.apply(tx, tx).sum().backward(),
               "function TooFewBackward returned an incorrect number of gradients "
               "(expected 2, got 1)")
    same_error(_backward_of("TooMany", jg, JG, x), _backward_of("TooMany", torch, TH, tx),
               "function TooManyBackward returned an incorrect number of gradients "
               "(expected 1, got 2)")
    x.grad = None
    JG.ExtraNones.apply(x).sum().backward()  # trailing Nones are dropped
    close(x.grad, [2.0, 2.0, 2.0])


def test_gradient_for_a_non_tensor_argument():
    x, tx = pair(X)
    same_error(_backward_of("GradForNumber", jg, JG, x, 3),
               _backward_of("GradForNumber", torch, TH, tx, 3),
               "function GradForNumberBackward returned a gradient different than None at "
               "position 2, but the corresponding forward input was not a Variable")


def test_gradient_of_the_wrong_shape_dtype_or_kind():
    x, tx = pair(X)
    same_error(_backward_of("WrongShape", jg, JG, x), _backward_of("WrongShape", torch, TH, tx),
               "Function WrongShapeBackward returned an invalid gradient at index 0 - got [5] "
               "but expected shape compatible with [3]")
    same_error(_backward_of("NotATensor", jg, JG, x), _backward_of("NotATensor", torch, TH, tx),
               "expected Variable or None (got int)")
    x.grad = None
    JG.Broadcast.apply(x).sum().backward()
    close(x.grad, [8.0, 8.0, 8.0])
    x.grad = None
    JG.WrongDtype.apply(x).sum().backward()
    assert x.grad.dtype is jg.float32
    close(x.grad, [2.0, 2.0, 2.0])
    if torch is not None:
        TH.Broadcast.apply(tx).sum().backward()
        close(tx.grad, [8.0, 8.0, 8.0])
        tx.grad = None
        TH.WrongDtype.apply(tx).sum().backward()
        assert tx.grad.dtype == torch.float32


def test_missing_or_doubled_methods():
    x, tx = pair(X)
    same_error(_backward_of("NoBackward", jg, JG, x), _backward_of("NoBackward", torch, TH, tx),
               "You must implement either the backward or vjp method for your custom "
               "autograd.Function to use it with backward mode AD.")
    same_error(lambda: JG.NoForward.apply(x), lambda: TH.NoForward.apply(tx),
               "You must implement the forward function for custom autograd.Function.")
    same_error(_backward_of("Both", jg, JG, x), _backward_of("Both", torch, TH, tx),
               "Implementing both 'backward' and 'vjp' for a custom Function is not allowed.")
    same_error(lambda: JG.CtxForwardWithSetup.apply(x),
               lambda: TH.CtxForwardWithSetup.apply(tx), "missing a required argument: 'x'")


def test_instantiating_and_legacy_call():
    x, tx = pair(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = JG.Scale()
    assert [w.category for w in caught] == [DeprecationWarning]
    message = str(caught[0].message)
    assert message.startswith(f"{JG.Scale} should not be instantiated. Methods on autograd "
                              "functions are all static")
    if torch is not None:
        with warnings.catch_warnings(record=True) as tcaught:
            warnings.simplefilter("always")
            tf = TH.Scale()
        assert [w.category for w in tcaught] == [DeprecationWarning]
        assert message.split("> ", 1)[1] == str(tcaught[0].message).split("> ", 1)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy, tlegacy = JG.Legacy(), (TH.Legacy() if torch is not None else None)
    same_error(lambda: f(x, 2.0), lambda: tf(tx, 2.0),
               "Legacy autograd function with non-static forward method is deprecated.")
    same_error(lambda: legacy(x), lambda: tlegacy(tx),
               "Please use new-style autograd function with static forward method.")


# --- lazy-mode structure ------------------------------------------------------------

def test_repeated_steps_with_changing_differentiability():
    """The same ops recorded again and again while which outputs get a gradient changes
    (a flag, not the inputs): each step's gradient is its own."""

    class Gate(jg.autograd.Function):
        @staticmethod
        def forward(ctx, x, block):
            y = x * 2
            if block:
                ctx.mark_non_differentiable(y)
            return y

        @staticmethod
        def backward(ctx, g):
            return g * 2, None

    x, _ = pair(X)
    w = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for step in range(6):
        block = step % 3 == 2
        x.grad = w.grad = None
        y = Gate.apply(x, block)
        assert y.requires_grad is not block
        loss = (y * w).sum()
        loss.backward()
        close(w.grad, 2 * np.array(X))
        if block:
            assert x.grad is None
        else:
            close(x.grad, [2.0, 4.0, 6.0])


def test_backward_uses_the_arguments_of_each_call():
    x, _ = pair(X)
    for k in (1.0, 2.0, 3.0, 2.0):
        x.grad = None
        (JG.Scale.apply(x, k) * 1.5).sum().backward()
        close(x.grad, 3.0 * k * np.array(X))


# --- PyTorch's tutorial -------------------------------------------------------------

def legendre_fit(lib, LegendrePolynomial3, steps=20):
    """PyTorch's "polynomial fit with a custom autograd Function" example, unchanged but
    for ``torch`` spelled ``lib`` and the number of steps; returns the losses."""
    dtype = lib.float
    device = lib.device("cpu")
    x = lib.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = lib.sin(x)
    a = lib.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = lib.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = lib.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = lib.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 5e-6
    losses = []
    for t in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with lib.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return losses, [a.item(), b.item(), c.item(), d.item()]


def legendre_reference(steps=20):
    """The same fit in float64 NumPy, gradients by hand."""
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    a, b, c, d = 0.0, -1.0, 0.0, 0.3
    losses = []
    for _ in range(steps):
        u = c + d * x
        p = 0.5 * (5 * u ** 3 - 3 * u)
        r = a + b * p - y
        losses.append(float((r ** 2).sum()))
        g = 2 * r
        gu = g * b * 1.5 * (5 * u ** 2 - 1)
        ga, gb, gc, gd = g.sum(), (g * p).sum(), gu.sum(), (gu * x).sum()
        a, b, c, d = a - 5e-6 * ga, b - 5e-6 * gb, c - 5e-6 * gc, d - 5e-6 * gd
    return losses, [a, b, c, d]


def test_legendre_polynomial3_tutorial():
    losses, params = legendre_fit(jg, JG.LegendrePolynomial3)
    ref_losses, ref_params = legendre_reference()
    assert losses[-1] < 0.7 * losses[0]  # it learns
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    np.testing.assert_allclose(params, ref_params, rtol=1e-4, atol=1e-6)
    if torch is not None:
        t_losses, t_params = legendre_fit(torch, TH.LegendrePolynomial3)
        np.testing.assert_allclose(losses, t_losses, rtol=1e-5)
        np.testing.assert_allclose(params, t_params, rtol=1e-5, atol=1e-7)
