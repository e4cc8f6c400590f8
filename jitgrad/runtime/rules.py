"""Per-op lowering rules: how each primitive the interpreter covers becomes rows of a
Program, keyed by the op's name (an op missing here runs eagerly)."""
import numpy as np

from ..core.shapes import advanced_key as _advanced_key, c_strides as _c_strides, fake_array
from ..kernels.cpu import elementwise as ew
from ..kernels.cpu import interpreter as I
from ..kernels.cpu import reduce as rd
from .backends import cpu

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# linear_act's activation attribute -> the unary op code run over linear's output
_ACTIVATION_CODES = {"tanh": ew.TANH, "sigmoid": ew.SIGMOID, "relu": ew.RELU}


def _ew_unary(code):
    def lower(lw, p):
        (x,) = p.inputs
        out = lw.new_out(p)
        off, shape = lw.operand(x)
        lw.elementwise(I.UNARY, code, out, p.shape, [(off, shape, None)])
        return out
    return lower


def _ew_binary(code, opcode=I.BINARY):
    def lower(lw, p):
        a, b = p.inputs
        out = lw.new_out(p)
        lw.elementwise(opcode, code, out, p.shape,
                       [(*lw.operand(a), None), (*lw.operand(b), None)])
        return out
    return lower


def _lower_where(lw, p):
    a, b = p.inputs
    out = lw.new_out(p)
    cond = p.attrs["cond"]
    lw.elementwise(I.WHERE, 0, out, p.shape, [(*lw.operand(cond), None),
                                              (*lw.operand(a), None), (*lw.operand(b), None)])
    return out


def _lower_clamp(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    k = lw.scalar(p.attrs["lo"])
    lw.scalar(p.attrs["hi"])
    lw.elementwise(I.CLAMP, k, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_pow_scalar(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(I.POW_SCALAR, lw.scalar(p.attrs["exponent"]), out, p.shape,
                   [(*lw.operand(x), None)])
    return out


def _lower_rpow(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    base = lw.constant(p.attrs["base"])
    lw.elementwise(I.BINARY, ew.POW, out, p.shape, [(base, (), None), (*lw.operand(x), None)])
    return out


def _lower_rsub(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    s = lw.constant(p.attrs["scalar"])
    lw.elementwise(I.BINARY, ew.SUB, out, p.shape, [(s, (), None), (*lw.operand(x), None)])
    return out


def _lower_copy(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_overwrite(lw, p):
    out = lw.new_out(p)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(p.inputs[1]), None)])
    return out


def _lower_alias(lw, p):
    return lw.operand(p.inputs[0])[0]


def _lower_view(lw, p):
    (x,) = p.inputs
    if p.op.name == "permute" and p.attrs["dims"] == (1, 0):
        off, shape, flag = lw.matrix(x)
        if not flag:  # a plain transpose: consumers that are matmuls read it as a flag
            lw.transposed[("n", p.pos)] = (off, shape)
            return off
    off, shape = lw.operand(x)
    fake = fake_array(shape, p.dtype if p.dtype in _FLOATS else lw.fdtype)
    v = p.op.forward(fake, **p.attrs)
    v = v[p.index] if isinstance(v, tuple) else v
    item = fake.itemsize
    view_off = (v.__array_interface__["data"][0] - fake.__array_interface__["data"][0]) // item
    strides = tuple(s // item for s in v.strides)
    if strides == _c_strides(v.shape) or v.size <= 1:
        return off + view_off  # the view is a contiguous run of the buffer: share it
    out = lw.new_out(p)
    lw.copy_view(out, p.shape, off, view_off, strides)
    return out


def _lower_reduce(code, scale=None):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        if not dims:
            out = lw.new_out(p)
            lw.elementwise(I.COPY, 0, out, p.shape, [(off, shape, None)])
            return out
        res = lw.reduce(code, off, shape, dims, p if scale is None else None)
        if scale is not None:
            n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
            out = lw.new_out(p)
            lw.elementwise(I.BINARY, ew.DIV, out, p.shape,
                           [(res, p.shape, None), (lw.constant(n if n else np.nan), (), None)])
            return out
        return res
    return lower


def _lower_var(sqrt):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
        n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
        total = lw.reduce(rd.SUM, off, shape, dims)
        mu = lw.alloc(np.prod(keep))
        lw.elementwise(I.BINARY, ew.DIV, mu, keep, [(total, keep, None),
                                                    (lw.constant(max(n, 1)), (), None)])
        centred = lw.alloc(np.prod(shape))
        lw.elementwise(I.BINARY, ew.SUB, centred, shape, [(off, shape, None), (mu, keep, None)])
        lw.elementwise(I.BINARY, ew.MUL, centred, shape, [(centred, shape, None),
                                                          (centred, shape, None)])
        sq = lw.reduce(rd.SUM, centred, shape, dims)
        out = lw.new_out(p)
        lw.elementwise(I.BINARY, ew.DIV, out, p.shape, [(sq, p.shape, None),
                                                        (lw.constant(p.attrs["denom"]), (), None)])
        if sqrt:
            lw.elementwise(I.UNARY, ew.SQRT, out, p.shape, [(out, p.shape, None)])
        return out
    return lower


def _lower_logsumexp(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    dims = p.attrs["dims"]
    keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
    m = lw.reduce(rd.MAX, off, shape, dims)
    lw.elementwise(I.UNARY, ew.FINITE_OR_ZERO, m, keep, [(m, keep, None)])
    shifted = lw.alloc(np.prod(shape))
    lw.elementwise(I.BINARY, ew.SUB, shifted, shape, [(off, shape, None), (m, keep, None)])
    e = lw.alloc(np.prod(shape))  # (not in place: LLVM leaves such a loop unvectorised)
    lw.elementwise(I.UNARY, ew.EXP, e, shape, [(shifted, shape, None)])
    s = lw.reduce(rd.SUM, e, shape, dims)
    lw.elementwise(I.UNARY, ew.LOG, s, keep, [(s, keep, None)])
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.ADD, out, keep, [(s, keep, None), (m, keep, None)])
    return out


def _lower_softmax(log):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        shape = shape or (1,)  # a 0-d tensor is one row of one element
        d = p.attrs["dim"]
        a = int(np.prod(shape[:d], dtype=np.int64))
        b = int(np.prod(shape[d + 1:], dtype=np.int64))
        out = lw.new_out(p)
        if a * b * shape[d]:
            lw.row(I.SOFTMAX, int(log), out, off, dims=(a, shape[d], b, 1))
        return out
    return lower


def _lower_mse(lw, p):
    """(input - target)^2, summed or averaged unless the reduction is "none"."""
    x, t = p.inputs
    (xo, shape), (to, _) = lw.operand(x), lw.operand(t)
    reduction = p.attrs["reduction"]
    n = int(np.prod(shape, dtype=np.int64))
    sq = lw.new_out(p) if reduction == "none" or not shape else lw.alloc(n)
    lw.elementwise(I.BINARY, ew.SUB, sq, shape, [(xo, shape, None), (to, shape, None)])
    lw.elementwise(I.BINARY, ew.MUL, sq, shape, [(sq, shape, None), (sq, shape, None)])
    if reduction == "none" or not shape:
        return sq
    if reduction == "sum":
        return lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))), p)
    total = lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))))
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.DIV, out, (), [(total, (), None),
                                               (lw.constant(n if n else np.nan), (), None)])
    return out


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
    lw.row(I.MM, ta | (tb << 1), out, ao, bo, dims=dims)
    return out


def _lower_linear(lw, p, out=None):
    """``x @ w.T (+ b)`` into ``out`` (by default the node's own buffer)."""
    x, w = p.inputs[0], p.inputs[1]
    xo, xsh, tx = lw.matrix(x)
    wo, wsh, tw = lw.matrix(w)
    if out is None:
        out = lw.new_out(p)
    # x @ w.T: w's buffer read transposed (flag flips when w is itself a transpose)
    lw.row(I.MM, tx | ((1 - tw) << 1), out, xo, wo, dims=(xsh[0], xsh[1], wsh[0], 1))
    if len(p.inputs) == 3:
        bo, bsh = lw.operand(p.inputs[2])
        lw.elementwise(I.BINARY, ew.ADD, out, p.shape, [(out, p.shape, None), (bo, bsh, None)])
    return out


def _lower_linear_act(lw, p):
    # (the activation reads another buffer: in place, LLVM's overlap check fails and the
    # loop runs unvectorised, 6x slower for tanh)
    linear = _lower_linear(lw, p, lw.alloc(np.prod(p.shape, dtype=np.int64)))
    out = lw.new_out(p)
    lw.elementwise(I.UNARY, _ACTIVATION_CODES[p.attrs["act"]], out, p.shape,
                   [(linear, p.shape, None)])
    return out


def _window_row(lw, opcode, out, a, b, image, out_hw, kernel, stride, padding, dilation):
    lw.row(opcode, 0, out, a, b, dims=image, sa=(*out_hw, *kernel),
           sb=(*stride, *padding), sc=(*dilation, 0, 0))


def _lower_im2col(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    out = lw.new_out(p)
    _window_row(lw, I.IM2COL, out, off, 0, shape, **p.attrs)
    return out


def _lower_col2im(lw, p):
    (g,) = p.inputs
    off, _ = lw.operand(g)
    out = lw.new_out(p)
    attrs = dict(p.attrs)
    _window_row(lw, I.COL2IM, out, off, 0, attrs.pop("shape"), **attrs)
    return out


def _lower_pool(opcode):
    def lower(lw, p):
        v, x = p.inputs if len(p.inputs) == 2 else p.inputs * 2  # max_pool2d: v is x
        (vo, _), (xo, image) = lw.operand(v), lw.operand(x)
        out = lw.new_out(p)
        _window_row(lw, opcode, out, vo, xo, image if len(image) == 4 else (1, *image),
                    **p.attrs)
        return out
    return lower


def _lower_bmm(lw, p):
    a, b = p.inputs
    (ao, ash), (bo, bsh) = lw.operand(a), lw.operand(b)
    out = lw.new_out(p)
    lw.row(I.BMM, 0, out, ao, bo, dims=(ash[0], ash[1], ash[2], bsh[2]))
    return out


def _lower_cat(lw, p):
    out = lw.new_out(p)
    d = p.attrs["dim"] if p.op.name == "cat" else None
    st = _c_strides(p.shape)
    start = 0
    for u in p.inputs:
        off, shape = lw.operand(u)
        if p.op.name == "stack":
            k = p.attrs["dim"]
            dst_shape = shape[:k] + (1,) + shape[k:]
            dst_off = start * st[k]
            start += 1
        else:
            if len(shape) == 1 and shape[0] == 0 and len(p.shape) != 1:
                continue
            dst_shape = shape
            dst_off = start * st[d]
            start += shape[d]
        n = int(np.prod(dst_shape, dtype=np.int64))
        if n == 0:
            continue
        # write the contiguous input into the output's strided window
        dims = cpu._coalesce(dst_shape, [_c_strides(dst_shape), st])
        dims = [(1, [0, 0])] * (4 - len(dims)) + dims
        shape4 = tuple(x for x, _ in dims)
        src = tuple(s[0] for _, s in dims)
        dst = tuple(s[1] for _, s in dims)
        lw.row(I.STRIDED_COPY, 0, out + dst_off, off, dims=shape4, sa=src, sb=dst)
    return out


def _lower_index(lw, p):
    if _advanced_key(p.attrs["key"]):
        return _lower_gather_index(lw, p)
    return _lower_view(lw, p)


def _lower_gather(kind):
    """out = x.flat[positions]: from an index ``key`` over x's shape, or a raw ``idx``."""
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        out = lw.new_out(p)
        n = int(np.prod(p.shape, dtype=np.int64))
        k = lw.indices(kind, shape if kind == "key" else None, n)
        if n:
            lw.row(I.GATHER, k, out, off, dims=(n, 1, 1, 1))
        return out
    return lower


_lower_gather_index = _lower_gather("key")


_lower_take = _lower_gather("idx")


def _lower_nll(lw, p):
    """-sum(logp.flat[idx]) (over the rows' count for the mean): sum then one division (a
    negation is exact, so this is the composition's result bit for bit)."""
    (logp,) = p.inputs
    off, _ = lw.operand(logp)
    m = p.attrs["idx"].shape[0]
    picked = lw.alloc(m)
    lw.row(I.GATHER, lw.indices("idx", None, m), picked, off, dims=(m, 1, 1, 1))
    total = lw.reduce(rd.SUM, picked, (m,), (0,))
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.DIV, out, (), [
        (total, (), None), (lw.constant(-m if p.attrs["reduction"] == "mean" else -1), (), None)])
    return out


def _lower_index_add(lw, p):
    (g,) = p.inputs
    off, gshape = lw.operand(g)
    out = lw.new_out(p)
    n = int(np.prod(gshape, dtype=np.int64))
    total = int(np.prod(p.shape, dtype=np.int64))
    if p.attrs.get("key") is not None:   # positions of a forward index, kept as its key
        k = lw.indices("key", tuple(p.attrs["shape"]), n)
    else:
        k = lw.indices("idx", None, n)
    lw.row(I.SCATTER_ADD, k, out, off, dims=(n, total, 1, 1))
    return out


def _lower_index_put(lw, p):
    x, v = p.inputs
    xo, xshape = lw.operand(x)
    vo, vshape = lw.operand(v)
    idx_shape = p.attrs["idx"].shape
    n = int(np.prod(idx_shape, dtype=np.int64))
    vals = lw.alloc(n)
    lw.elementwise(I.COPY, 0, vals, idx_shape, [(vo, vshape, None)])
    out = lw.new_out(p)
    total = int(np.prod(p.shape, dtype=np.int64))
    k = lw.indices("idx", None, n)
    lw.row(I.SCATTER, k, out, vals, xo, dims=(n, total, 1, 1))
    return out


LOWER = {
    "neg": _ew_unary(ew.NEG), "exp": _ew_unary(ew.EXP), "log": _ew_unary(ew.LOG),
    "sqrt": _ew_unary(ew.SQRT), "sin": _ew_unary(ew.SIN), "cos": _ew_unary(ew.COS),
    "tanh": _ew_unary(ew.TANH), "sigmoid": _ew_unary(ew.SIGMOID), "relu": _ew_unary(ew.RELU),
    "abs": _ew_unary(ew.ABS), "sign": _ew_unary(ew.SIGN),
    "reciprocal": _ew_unary(ew.RECIPROCAL), "rsqrt": _ew_unary(ew.RSQRT),
    "add": _ew_binary(ew.ADD), "sub": _ew_binary(ew.SUB), "mul": _ew_binary(ew.MUL),
    "div": _ew_binary(ew.DIV), "pow": _ew_binary(ew.POW), "maximum": _ew_binary(ew.MAXIMUM),
    "remainder": _ew_binary(ew.REMAINDER), "fmod": _ew_binary(ew.FMOD),
    "threshold_backward": _ew_binary(ew.THRESHOLD_BACKWARD),
    "tanh_backward": _ew_binary(ew.TANH_BACKWARD),
    "sigmoid_backward": _ew_binary(ew.SIGMOID_BACKWARD),
    "div_floor": _ew_binary(ew.FLOORDIV), "overwrite": _lower_overwrite,
    "minimum": _ew_binary(ew.MINIMUM),
    "eq": _ew_binary(ew.EQ, I.COMPARE), "ne": _ew_binary(ew.NE, I.COMPARE),
    "lt": _ew_binary(ew.LT, I.COMPARE), "le": _ew_binary(ew.LE, I.COMPARE),
    "gt": _ew_binary(ew.GT, I.COMPARE), "ge": _ew_binary(ew.GE, I.COMPARE),
    "logical_and": _ew_binary(ew.AND, I.COMPARE), "logical_or": _ew_binary(ew.OR, I.COMPARE),
    "logical_xor": _ew_binary(ew.XOR, I.COMPARE),
    "where": _lower_where, "clamp": _lower_clamp, "pow_scalar": _lower_pow_scalar,
    "rpow": _lower_rpow, "rsub": _lower_rsub, "to_copy": _lower_copy, "clone": _lower_copy,
    "alias": _lower_alias,
    "sum": _lower_reduce(rd.SUM), "mean": _lower_reduce(rd.SUM, scale=True),
    "prod": _lower_reduce(rd.PROD), "amax": _lower_reduce(rd.MAX),
    "amin": _lower_reduce(rd.MIN), "var": _lower_var(False), "std": _lower_var(True),
    "logsumexp": _lower_logsumexp, "softmax": _lower_softmax(False),
    "log_softmax": _lower_softmax(True),
    "mm": _lower_mm, "dot": _lower_mm, "mv": _lower_mm, "bmm": _lower_bmm,
    "linear": _lower_linear, "linear_act": _lower_linear_act, "mse_loss": _lower_mse,
    "im2col": _lower_im2col, "col2im": _lower_col2im, "nll_loss": _lower_nll,
    "max_pool2d": _lower_pool(I.POOL_GATHER), "max_pool2d_gather": _lower_pool(I.POOL_GATHER),
    "max_pool2d_scatter": _lower_pool(I.POOL_SCATTER),
    "view": _lower_view, "permute": _lower_view, "expand": _lower_view,
    "split": _lower_view, "unbind": _lower_view, "index": _lower_index,
    "cat": _lower_cat, "stack": _lower_cat,
    "take": _lower_take, "index_add": _lower_index_add, "index_put": _lower_index_put,
}
