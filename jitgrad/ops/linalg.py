"""Matrix products: mm, bmm, dot, mv, matmul, linear, and ``linear_act`` (a linear layer
and its activation as one op, for ``nn.Sequential``)."""
import numpy as np

from .. import lazy as _lazy
from ..autograd.graph import node_class
from ..core.shapes import broadcast_shape as _broadcast_shape
from ..core.shapes import fake_array
from ..kernels.cpu import elementwise as ew
from ..runtime.backends import cpu
from ..tensor import Tensor
from .args import _C_NAMES
from .dispatch import apply, unview
from .elementwise import _NO_ATTRS, sigmoid_backward, tanh_backward, threshold_backward
from .reduce import sum
from .registry import REGISTRY, defop
from .shape import _reshape, expand, reshape, squeeze, t, unsqueeze
from ..kernels.cpu import interpreter as interp

def _check_same_dtype(a, b):
    if a.dtype is not b.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: "
                           f"{_C_NAMES[a.dtype.name].lower()} != {_C_NAMES[b.dtype.name].lower()}")


def _lower_mm(lw, p):
    a, b = p.inputs
    ao, ash, ta = lw.matrix(a)
    bo, bsh, tb = lw.matrix(b)
    out = lw.new_out(p)
    if len(ash) == 1 and len(bsh) == 1:        # dot
        dims = (1, ash[0], 1, 1)
    elif len(bsh) == 1:                        # mv
        dims = (ash[0], ash[1], 1, 1)
    else:
        dims = (ash[0], ash[1], bsh[1], 1)
    lw.row(interp.MM, ta | (tb << 1), out, ao, bo, dims=dims)
    return out


def _lower_bmm(lw, p):
    a, b = p.inputs
    (ao, ash), (bo, bsh) = lw.operand(a), lw.operand(b)
    out = lw.new_out(p)
    lw.row(interp.BMM, 0, out, ao, bo, dims=(ash[0], ash[1], ash[2], bsh[2]))
    return out


_MM = defop("mm", lambda a, b: cpu.mm(a, b),
            lambda c, g: (mm(g, c.saved(1).t()) if c.needs_input_grad[0] else None,
                          mm(c.saved(0).t(), g) if c.needs_input_grad[1] else None), (0, 1),
            meta=lambda m: [((m[0][0][0], m[1][0][1]), m[0][1])], lower=_lower_mm)
_BMM = defop("bmm", lambda a, b: cpu.bmm(a, b),
             lambda c, g: (bmm(g, c.saved(1).transpose(1, 2)) if c.needs_input_grad[0] else None,
                           bmm(c.saved(0).transpose(1, 2), g) if c.needs_input_grad[1] else None),
             (0, 1), meta=lambda m: [((m[0][0][0], m[0][0][1], m[1][0][2]), m[0][1])],
             lower=_lower_bmm)


def mm(input, mat2):
    """Matrix product of two 2-D tensors."""
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                           f"{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    _check_same_dtype(input, mat2)
    return apply(_MM, [input, mat2], "MmBackward0")


def bmm(input, mat2):
    """Batched matrix product of two 3-D tensors."""
    if input.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    b, n, k = input.shape
    if mat2.shape[:2] != (b, k):
        raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{b}, {k}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    if input.dtype is not mat2.dtype:  # (PyTorch's words for bmm)
        raise RuntimeError(f"expected scalar type {_C_NAMES[input.dtype.name]} but found "
                           f"{_C_NAMES[mat2.dtype.name]}")
    return apply(_BMM, [input, mat2], "BmmBackward0")


_DOT = defop("dot", lambda a, b: cpu.mm(a.reshape(1, -1), b.reshape(-1, 1)).reshape(()),
             lambda c, g: (g * c.saved(1) if c.needs_input_grad[0] else None,
                           g * c.saved(0) if c.needs_input_grad[1] else None), (0, 1),
             meta=lambda m: [((), m[0][1])], lower=_lower_mm)
_MV = defop("mv", lambda a, v: cpu.mm(a, v.reshape(-1, 1)).reshape(-1),
            lambda c, g: (mm(g.reshape(-1, 1), c.saved(1).reshape(1, -1))
                          if c.needs_input_grad[0] else None,
                          mv(c.saved(0).t(), g) if c.needs_input_grad[1] else None), (0, 1),
            meta=lambda m: [((m[0][0][0],), m[0][1])], lower=_lower_mm)


def dot(input, other):
    """Inner product of two 1-D tensors."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape != other.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
            f"[{other.shape[0]}] to have the same number of elements, but got {input.shape[0]} "
            f"and {other.shape[0]} elements respectively")
    if input.dtype is not other.dtype:
        raise RuntimeError("dot : expected both vectors to have same dtype, but found "
                           f"{_C_NAMES[input.dtype.name]} and {_C_NAMES[other.dtype.name]}")
    return apply(_DOT, [input, other], "DotBackward0")


def mv(input, vec):
    """Matrix-vector product."""
    if input.ndim != 2 or vec.ndim != 1 or input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({input.shape[0]}), mat "
                           f"({'x'.join(map(str, input.shape))}), vec ({vec.shape[0]})")
    _check_mv_dtype(input, vec)
    return apply(_MV, [input, vec], "MvBackward0")


def _check_mv_dtype(mat, vec):
    if mat.dtype is not vec.dtype:  # (PyTorch's words: mv is addmv into vec's dtype)
        m, v = _C_NAMES[mat.dtype.name], _C_NAMES[vec.dtype.name]
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {v}, {m}, "
                           f"and {v}")


def _linear_forward(x, w, b=None):
    out = cpu.mm(x, w.T)
    return out if b is None else cpu.binary(ew.ADD, out, b, out.dtype)


def _linear_vjp(c, g):
    x, w = c.saved(0), c.saved(1)
    need = c.needs_input_grad
    return (mm(g, w) if need[0] else None,
            mm(g.t(), x) if need[1] else None,
            sum(g, 0) if len(need) > 2 and need[2] else None)


def _linear_meta(m):
    """The output of ``input @ weight.T (+ bias)`` for 2-D input and weight of one dtype and
    a matching 1-D bias; None for any other form (``linear`` checks it and takes another
    path: the recorder then leaves the op to it)."""
    (xs, xd), (ws, wd) = m[0], m[1]
    if (len(xs) != 2 or len(ws) != 2 or xs[1] != ws[1] or wd != xd
            or (len(m) > 2 and (m[2][0] != ws[:1] or m[2][1] != xd))):
        return None
    return [((xs[0], ws[0]), xd)]


def _lower_linear(lw, p, out=None):
    """``x @ w.T (+ b)`` into ``out`` (by default the node's own buffer)."""
    x, w = p.inputs[0], p.inputs[1]
    xo, xsh, tx = lw.matrix(x)
    wo, wsh, tw = lw.matrix(w)
    if out is None:
        out = lw.new_out(p)
    # x @ w.T: w's buffer read transposed (flag flips when w is itself a transpose)
    lw.row(interp.MM, tx | ((1 - tw) << 1), out, xo, wo, dims=(xsh[0], xsh[1], wsh[0], 1))
    if len(p.inputs) == 3:
        bo, bsh = lw.operand(p.inputs[2])
        lw.elementwise(interp.BINARY, ew.ADD, out, p.shape, [(out, p.shape, None), (bo, bsh, None)])
    return out


_LINEAR = defop("linear", _linear_forward, _linear_vjp, (0, 1), meta=_linear_meta,
                lower=_lower_linear)


# Lazy mode's Sequential lane records a Linear and the Tanh, ReLU or Sigmoid after it as
# one op (one recorded op per layer instead of two; one pass less when lowered). Its
# grad_fn is what the two would have made: the activation's node, whose input is the
# linear node (nothing the user holds is the linear output in between: each node saves
# only inputs, or its own output). Eager mode runs the layers as they are.
# per activation: its elementwise code, grad_fn name and backward from the output
_ACTIVATIONS = {"tanh": (ew.TANH, "TanhBackward0", tanh_backward),
                "relu": (ew.RELU, "ReluBackward0", threshold_backward),
                "sigmoid": (ew.SIGMOID, "SigmoidBackward0", sigmoid_backward)}


def _linear_act_forward(x, w, b, act):
    return cpu.unary(_ACTIVATIONS[act][0], _linear_forward(x, w, b))


def _linear_act_vjp(c, g):
    return _linear_vjp(c, _ACTIVATIONS[c.attrs["act"]][2](g, c.saved("out")))


def _linear_act_meta(m, act):
    return _linear_meta(m) if len(m) == 3 else None


def _linear_act_nodes(p, saved_out):
    x, w, b = p.inputs
    inner = node_class("AddmmBackward0")(_LINEAR, _NO_ATTRS, [x, w, b], 1)
    inner.save(0, x)
    inner.save(1, w)
    middle = Tensor._make(fake_array(p.shape, p.dtype, (0,) * len(p.shape)))  # only an edge
    middle._requires_grad, middle._grad_fn = True, inner
    act = _ACTIVATIONS[p.attrs["act"]]
    outer = node_class(act[1])(REGISTRY[p.attrs["act"]], _NO_ATTRS, [middle], 1)
    outer._saved["out"] = saved_out(outer)
    return [inner, outer]


def _lower_linear_act(lw, p):
    # (the activation reads another buffer: in place, LLVM's overlap check fails and the
    # loop runs unvectorised, 6x slower for tanh)
    linear = _lower_linear(lw, p, lw.alloc(np.prod(p.shape, dtype=np.int64)))
    out = lw.new_out(p)
    lw.elementwise(interp.UNARY, _ACTIVATIONS[p.attrs["act"]][0], out, p.shape,
                   [(linear, p.shape, None)])
    return out


_LINEAR_ACT = defop("linear_act", _linear_act_forward, _linear_act_vjp, (0, 1, "out"),
                    meta=_linear_act_meta, nodes=_linear_act_nodes, lower=_lower_linear_act)
# per activation: the attributes, their key and the grad_fn name, made once
LINEAR_ACT_LANES = {act: ({"act": act}, (("act", act),), name)
                    for act, (_, name, _) in _ACTIVATIONS.items()}


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one op (``AddmmBackward0``, as PyTorch records it)."""
    if type(input) is Tensor and isinstance(weight, Tensor) and isinstance(bias, Tensor):
        # the common case first: 2-D float input, weight and matching 1-D bias
        xs, ws, bs = input._shape, weight._shape, bias._shape
        d = input._npdtype
        if (len(xs) == 2 and len(ws) == 2 and xs[1] == ws[1] and bs == ws[:1]
                and weight._npdtype is d and bias._npdtype is d):
            if _lazy._STATE["lazy"]:
                out = _lazy.record(_LINEAR, [input, weight, bias], _NO_ATTRS, "AddmmBackward0",
                                   ())
                if out is not None:
                    return out
            return apply(_LINEAR, [input, weight, bias], "AddmmBackward0")
    if input.ndim == 2 and weight.ndim == 2 and (bias is None or bias.ndim <= 1):
        if input.shape[1] != weight.shape[1]:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                               f"{input.shape[1]} and {weight.shape[1]}x{weight.shape[0]})")
        _check_same_dtype(input, weight)
        if bias is None:
            return apply(_LINEAR, [input, weight], "MmBackward0")
        if bias.shape not in ((weight.shape[0],), (1,), ()) or bias.dtype is not input.dtype:
            return matmul(input, t(weight)) + bias
        return apply(_LINEAR, [input, weight, bias], "AddmmBackward0")
    out = matmul(input, t(weight))
    return out if bias is None else out + bias


def _batched_dtype_error(x, y):
    """PyTorch's message for operands of two dtypes, one batched: it names the op its
    matmul would have called, which depends on whether it folds the batch into rows
    (``should_fold``: the smaller operand needs a gradient, or the larger one's batch dims
    are contiguous and the smaller is no matrix) and on which operand is larger."""
    larger = x.ndim >= y.ndim
    big, small = (x, y) if larger else (y, x)
    shape, strides = big.shape, big.stride()
    if not larger:  # PyTorch folds the larger one transposed
        shape = shape[:-2] + (shape[-1], shape[-2])
        strides = strides[:-2] + (strides[-1], strides[-2])
    fold = small.ndim <= 2 and (small.requires_grad or (x.ndim != 2 and (
        big.numel() == 0 or all(strides[i] == strides[i + 1] * shape[i + 1]
                                for i in range(len(shape) - 2)))))
    bn, sn = _C_NAMES[big.dtype.name], _C_NAMES[small.dtype.name]
    if not fold:
        xn, yn = _C_NAMES[x.dtype.name], _C_NAMES[y.dtype.name]
        raise RuntimeError(f"expected scalar type {xn} but found {yn}")
    if small.ndim == 1:
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {sn}, {bn}, "
                           f"and {sn}")
    raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {bn.lower()} != "
                       f"{sn.lower()}")


def matmul(input, other):
    """NumPy-style matrix product: dot, mv, mm or broadcast batched mm by the operands' ranks."""
    if not isinstance(other, Tensor) or not isinstance(input, Tensor):
        raise TypeError("matmul(): argument 'other' must be Tensor")
    a, b = input.ndim, other.ndim
    if a == 0 or b == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                           f"{a}D and {b}D")
    if input.dtype is not other.dtype and (a >= 3 or b >= 3):
        _batched_dtype_error(input, other)
    if a == 1 and b == 1:
        return dot(input, other)
    if a == 2 and b == 1:
        return mv(input, other)
    if a == 1 and b == 2:
        return unview(squeeze(mm(unsqueeze(input, 0), other), 0))
    if a == 2 and b == 2:
        return mm(input, other)
    if b <= 2:  # fold the batch of ``input`` into rows: one mm
        x = input if b == 2 else input
        w = other if b == 2 else unsqueeze(other, 1)
        rows = reshape(x, (-1, x.shape[-1]))
        out = mm(rows, w)
        shape = input.shape[:-1] + ((w.shape[1],) if b == 2 else ())
        return _reshape(out, shape, "UnsafeViewBackward0")
    x = unsqueeze(input, 0) if a == 1 else input
    y = unsqueeze(other, -1) if False else other
    if x.shape[-1] != y.shape[-2]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{int(np.prod(x.shape[:-2]))}, {x.shape[-1]}] but got: "
                           f"[{int(np.prod(y.shape[:-2]))}, {y.shape[-2]}].")
    batch = _broadcast_shape(x.shape[:-2], y.shape[:-2])
    x3 = reshape(expand(x, batch + x.shape[-2:]), (-1,) + x.shape[-2:])
    y3 = reshape(expand(y, batch + y.shape[-2:]), (-1,) + y.shape[-2:])
    out = _reshape(bmm(x3, y3), batch + (x.shape[-2], y.shape[-1]), "UnsafeViewBackward0")
    return unview(squeeze(out, -2)) if a == 1 else out
