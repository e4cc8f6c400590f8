"""The losses of ``torch.nn.functional`` (``nn.functional`` exports them): ``mse_loss`` and
``nll_loss``'s common case are one primitive each, as PyTorch records them, and
``binary_cross_entropy`` one primitive so its gradient stays finite at saturated
probabilities; the others are composites of ops. ``reduction`` is ``'mean'``, ``'sum'``
or ``'none'``, as in PyTorch."""
import warnings

import numpy as np

from .. import ops
from ..runtime.backends import cpu
from .. import lazy as _lazy
from ..kernels.cpu import elementwise as ew
from ..kernels.cpu import interpreter as interp
from ..kernels.cpu import index as _index
from ..kernels.cpu import reduce as rd
from ..tensor import Tensor

log_softmax = ops.log_softmax
sigmoid = ops.sigmoid
softmax = ops.softmax


def _reduce(x, reduction):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _mse_forward(x, t, reduction):
    diff = cpu.binary(ew.SUB, x, t, x.dtype)
    sq = cpu.binary(ew.MUL, diff, diff, x.dtype)
    if reduction == "none":
        return sq
    total = cpu.reduce(rd.SUM, sq, tuple(range(sq.ndim)), x.dtype)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore"):  # the mean of nothing is NaN, quietly, as in PyTorch
        return total / (float(sq.size) if sq.size else float("nan"))


def _mse_vjp(c, g):
    """``norm * (input - target) * grad``, ``norm`` 2 (2 / numel for the mean), as PyTorch's
    ``mse_loss_backward``; the target's gradient is its negation."""
    x, t = c.saved(0), c.saved(1)
    n = int(np.prod(x.shape))
    reduction = c.attrs["reduction"]
    scale = g * (2.0 / n if reduction == "mean" and n else 2.0)
    grad = (x - t) * scale
    return (grad if c.needs_input_grad[0] else None,
            -grad if c.needs_input_grad[1] else None)


def _mse_meta(metas, reduction):
    (xs, xd), (ts, td) = metas
    if xs != ts or xd != td or xd.kind != "f":  # (mse_loss takes the composite path then)
        return None
    return [(xs if reduction == "none" else (), xd)]


_STATE, _F32, _F64 = _lazy._STATE, np.dtype(np.float32), np.dtype(np.float64)
def _lower_mse(lw, p):
    """(input - target)^2, summed or averaged unless the reduction is "none"."""
    x, t = p.inputs
    (xo, shape), (to, _) = lw.operand(x), lw.operand(t)
    reduction = p.attrs["reduction"]
    n = int(np.prod(shape, dtype=np.int64))
    sq = lw.new_out(p) if reduction == "none" or not shape else lw.alloc(n)
    lw.elementwise(interp.BINARY, ew.SUB, sq, shape, [(xo, shape, None), (to, shape, None)])
    lw.elementwise(interp.BINARY, ew.MUL, sq, shape, [(sq, shape, None), (sq, shape, None)])
    if reduction == "none" or not shape:
        return sq
    if reduction == "sum":
        return lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))), p)
    total = lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))))
    out = lw.new_out(p)
    lw.elementwise(interp.BINARY, ew.DIV, out, (), [(total, (), None),
                                                    (lw.constant(n if n else np.nan), (), None)])
    return out


_MSE = ops.defop("mse_loss", _mse_forward, _mse_vjp, (0, 1), meta=_mse_meta, lower=_lower_mse)
# per reduction: the attributes and their key, made once (nothing writes an op's attrs)
_MSE_ATTRS = {r: ({"reduction": r}, (("reduction", r),)) for r in ("mean", "sum", "none")}


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean (or sum, or none) of squared differences: one op (``MseLossBackward0``, as
    PyTorch records it) when input and target have one shape and float dtype."""
    lane = _MSE_ATTRS.get(reduction)
    if lane is not None and type(input) is Tensor and type(target) is Tensor:
        if _STATE["lazy"]:  # the recorder checks shapes and dtypes (_mse_meta), once
            out = _lazy.record(_MSE, [input, target], lane[0], "MseLossBackward0", lane[1])
            if out is not None:
                return out
        elif target._shape == input._shape:
            d = input._npdtype
            if target._npdtype is d and (d is _F32 or d is _F64):
                return ops.apply(_MSE, [input, target], "MseLossBackward0",
                                 reduction=reduction)
    _warn_target_size(input, target)
    _check_reduction(reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def _warn_target_size(input, target):
    """PyTorch's warning for the regression losses, which broadcast mismatched shapes."""
    if target._shape != input._shape:
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input "
                      f"size ({input.shape}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", stacklevel=3)


def _class_last(input, target):
    """``input`` as ``(M, C)`` rows and ``target`` as ``(M,)``, checking shapes as PyTorch does."""
    xs, ts = input._shape, target._shape
    if len(xs) == 2 and len(ts) == 1 and xs[0] == ts[0]:
        return input, target  # the common case
    if input.ndim == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if input.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return ops.unsqueeze(input, 0), ops.reshape(target, (1,))
    if target.ndim == 0 or input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({target.shape[0] if target.ndim else 0}).")
    if input.ndim == 2:
        if target.ndim != 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return input, target
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(target.shape)}")
    c = input.shape[1]
    moved = ops.permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
    return ops.reshape(moved, (-1, c)), ops.reshape(target, (-1,))


def _nll_forward(logp, idx, rows, reduction):
    losses = np.negative(cpu.gather(logp, idx))
    total = cpu.reduce(rd.SUM, losses, (0,), logp.dtype)
    return total / logp.dtype.type(idx.shape[0]) if reduction == "mean" else total


def _nll_vjp(c, g):
    """``-g`` (``-g / M`` for the mean) at each row's class, as PyTorch's NLL backward."""
    m = c.attrs["idx"].shape[0]
    g = g / float(-m) if c.attrs["reduction"] == "mean" else -g
    return (ops.apply(ops._INDEX_ADD, [ops.expand(g, (m,))], "IndexAddBackward0",
                      shape=c._inputs_meta[0][0], idx=c.attrs["idx"]),)


# The common NLL loss (no class weights, nothing ignored, mean or sum) as one op over
# ``(M, C)`` log-probabilities: ``idx`` holds each row's flat class position (``rows`` says
# how it follows from the labels, so a jitgrad.jit replay can remake it)
def _lower_nll(lw, p):
    """-sum(logp.flat[idx]) (over the rows' count for the mean): sum then one division (a
    negation is exact, so this is the composition's result bit for bit)."""
    (logp,) = p.inputs
    off, _ = lw.operand(logp)
    m = p.attrs["idx"].shape[0]
    picked = lw.alloc(m)
    lw.row(interp.GATHER, lw.indices("idx", None, m), picked, off, dims=(m, 1, 1, 1))
    total = lw.reduce(rd.SUM, picked, (m,), (0,))
    out = lw.new_out(p)
    lw.elementwise(interp.BINARY, ew.DIV, out, (), [
        (total, (), None), (lw.constant(-m if p.attrs["reduction"] == "mean" else -1), (), None)])
    return out


_NLL = ops.defop("nll_loss", _nll_forward, _nll_vjp,
                 meta=lambda metas, idx, rows, reduction: [((), metas[0][1])], lower=_lower_nll)


def _nll(logp, target, idx, reduction):
    m, c = logp._shape
    attrs = {"idx": idx, "rows": (target, c), "reduction": reduction}
    if _lazy._STATE["lazy"]:  # the attributes' key given: no structural key for the array
        out = _lazy.record(_NLL, [logp], attrs, "NllLossBackward0", (
            ("idx", ("array", (m,), "<i8")), ("rows", (None, c)), ("reduction", reduction)))
        if out is not None:
            return out
    return ops.apply(_NLL, [logp], "NllLossBackward0", **attrs)


def _check_long(target):
    if target._npdtype != np.int64:
        raise RuntimeError("expected target dtype to be Long or Byte, but got "
                           f"{ops._C_NAMES[target.dtype.name]}")


def _class_idx(logp, target, ignore_index):
    """Each row's flat class position in ``(M, C)`` ``logp`` when every label is a class
    and none is ``ignore_index`` (the common case), else None."""
    _check_long(target)
    m, c = logp._shape
    if not m or 0 <= ignore_index < c:
        return None
    idx = _index.class_positions(np.ascontiguousarray(target._data), c)
    return idx if idx.shape[0] == m else None


def _picked(logp, target, weight, ignore_index, idx):
    """``logp[i, target[i]]`` per row and each row's weight (0 where ignored); ``idx``: the
    rows' class positions when ``_class_idx`` found the common case, else None."""
    m, c = logp._shape
    if idx is not None:
        return ops.apply(ops._TAKE, [logp], "TakeBackward0", idx=idx, rows=(target, c)), None
    _check_long(target)
    t = target._data
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"Target {t[bad][0]} is out of bounds.")
    safe = np.where(valid, t, 0)
    picked = ops.take(logp, np.arange(m) * c + safe)
    if weight is None and valid.all():
        return picked, None
    w = valid.astype(logp.dtype.np)
    if weight is not None:
        w = w * weight._data[safe]
    return picked, w


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices ``target`` under log-probabilities ``input``.

    ``mean`` divides by the summed weights of the rows not ignored.
    """
    _check_reduction(reduction)
    rows, t = _class_last(input, target)
    if weight is not None and weight.numel() != rows._shape[1]:
        raise RuntimeError(f"weight tensor should be defined either for all {rows._shape[1]} "
                           f"classes or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    idx = _class_idx(rows, t, ignore_index) if weight is None else None
    if idx is not None and reduction != "none":
        return _nll(rows, t, idx, reduction)
    picked, w = _picked(rows, t, weight, ignore_index, idx)
    if w is None:
        losses = -picked
        return ops.reshape(losses, target.shape) if reduction == "none" else \
            _reduce(losses, reduction)
    losses = picked * Tensor._make(-w)
    if reduction == "none":
        return ops.reshape(losses, target.shape)
    return _weighted_mean(ops.sum(losses), w.sum(dtype=w.dtype)) if reduction == "mean" \
        else ops.sum(losses)


def _weighted_mean(total, weight_sum):
    """``total / weight_sum``; with nothing weighed, NaN with zero gradients, as PyTorch
    gives (dividing would make them 0 / 0 too)."""
    if weight_sum == 0:
        return total + float("nan")
    return total / Tensor._make(np.asarray(weight_sum, total._npdtype))


_LOG_SOFTMAX_ROWS = {"dim": 1}


def _cross_entropy_lane(input, target, reduction):
    """Lazy mode's lane for the common ``cross_entropy``: ``(M, C)`` float logits, ``(M,)``
    class labels all in range, no weights or smoothing. Records what the general path
    records (log_softmax, nll_loss) without its checks on the way; None when this is not
    that case (the general path then checks and raises as PyTorch)."""
    if type(input) is not Tensor or type(target) is not Tensor:
        return None
    xs, ts = input._shape, target._shape
    d = input._npdtype
    if (len(xs) != 2 or len(ts) != 1 or xs[0] != ts[0] or not xs[0]
            or target._npdtype != np.int64 or (d is not ops._F32 and d is not ops._F64)):
        return None
    m, c = xs
    idx = _index.class_positions(np.ascontiguousarray(target._data), c)
    if idx.shape[0] != m:
        return None  # a label out of range: the general path raises PyTorch's error
    logp = _lazy.record(ops._LOG_SOFTMAX, [input], _LOG_SOFTMAX_ROWS, "LogSoftmaxBackward0",
                        _LOG_SOFTMAX_KEY)
    if logp is None:
        return None
    return _nll(logp, target, idx, reduction)


_LOG_SOFTMAX_KEY = tuple(_LOG_SOFTMAX_ROWS.items())


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """``nll_loss(log_softmax(input, 1), target)``: softmax cross-entropy, computed stably.

    ``input`` is ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` logits; ``target`` holds class
    indices (``ignore_index`` marks entries to skip), or class probabilities shaped like
    ``input``. ``weight`` rescales each class; ``label_smoothing`` mixes the target with the
    uniform distribution over the classes, as PyTorch does.
    """
    if (_lazy._STATE["lazy"] and weight is None and ignore_index == -100
            and not label_smoothing and reduction in ("mean", "sum")):
        out = _cross_entropy_lane(input, target, reduction)
        if out is not None:
            return out
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    logp = ops.log_softmax(input, class_dim)
    c = input.shape[class_dim] if input.ndim else 1
    # the weight broadcast against the class dimension of (C, d1, ...) or (N, C, d1, ...)
    along = (c,) + (1,) * (input.ndim - class_dim - 1)
    if target.dtype.is_floating_point and target.shape == input.shape:
        if ignore_index != -100:
            raise RuntimeError("ignore_index is not supported for floating point target")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / c
        per = logp * target
        if weight is not None:
            per = per * ops.reshape(weight, along)
        return _reduce(-ops.sum(per, class_dim), reduction)
    nll = nll_loss(logp, target, weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    # PyTorch's smoothing term: the (weighted) sum of all classes' log-probabilities,
    # zero where ignored, its mean normalised as nll_loss's (by the kept rows' weights)
    smooth = -ops.sum(logp if weight is None else logp * ops.reshape(weight, along), class_dim)
    labels = target._data
    keep = labels != ignore_index
    if not keep.all():
        smooth = smooth * Tensor._make(keep.astype(smooth._npdtype))
    if reduction == "mean":
        denom = keep.sum() if weight is None else weight._data[labels[keep]].sum()
        smooth = _weighted_mean(ops.sum(smooth), denom)
    elif reduction == "sum":
        smooth = ops.sum(smooth)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean (or sum, or none) of absolute differences ``|input - target|``."""
    _warn_target_size(input, target)
    _check_reduction(reduction)
    return _reduce(ops.abs(input - target), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta`` (``d = input -
    target``); ``beta=0`` is ``l1_loss``."""
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    _warn_target_size(input, target)
    _check_reduction(reduction)
    diff = input - target
    size = ops.abs(diff)
    return _reduce(ops.where(size < beta, diff * diff * (0.5 / beta), size - 0.5 * beta),
                   reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)`` (``d =
    input - target``): ``delta`` times ``smooth_l1_loss`` with ``beta=delta``."""
    if not delta > 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _warn_target_size(input, target)
    _check_reduction(reduction)
    diff = input - target
    size = ops.abs(diff)
    return _reduce(ops.where(size < delta, diff * diff * 0.5, (size - 0.5 * delta) * delta),
                   reduction)


def _bce_forward(x, y):
    # PyTorch checks the range inside its kernel; NaN fails the check too
    if x.size and not np.all((x >= 0) & (x <= 1)):
        raise RuntimeError("all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (y - 1) * np.maximum(np.log1p(-x), -100) - y * np.maximum(np.log(x), -100)
    return out.astype(x.dtype, copy=False)


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's EPSILON is a float, also for double inputs


def _bce_vjp(c, g):
    """PyTorch's rules: ``(x - y) / max(x * (1 - x), 1e-12)`` for the input (finite where
    the log was clamped) and ``-logit(x)``, unclamped, for the target."""
    x, y = c.saved(0), c.saved(1)
    gx = g * (x - y) / ops.clamp_min(x * (1 - x), _BCE_EPS) if c.needs_input_grad[0] else None
    gy = None
    if c.needs_input_grad[1]:
        gy = -g * ops.log(x / (1 - x))
    return gx, gy


# Binary cross-entropy per element as one primitive: its clamped logs make the composite's
# derivative 0 * inf = NaN at probabilities of exactly 0 or 1 (a saturated float32
# sigmoid), where PyTorch's backward stays finite; the VJP is written in jitgrad ops, so
# higher derivatives still follow
_BCE = ops.defop("binary_cross_entropy", _bce_forward, _bce_vjp, (0, 1),
                 meta=lambda metas: [metas[0]])


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """``-w * (target * log(input) + (1 - target) * log(1 - input))`` for probabilities
    ``input``, each log clamped at -100 as PyTorch does; ``weight`` broadcasts to
    ``input``'s shape."""
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the "
                         f"input size ({input.shape}) is deprecated. Please ensure they have "
                         "the same size.")
    _check_reduction(reduction)
    if target.dtype is not input.dtype:
        raise RuntimeError(f"Found dtype {ops._C_NAMES[target.dtype.name]} but expected "
                           f"{ops._C_NAMES[input.dtype.name]}")
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"binary_cross_entropy" not implemented for '
                                  f"'{ops._C_NAMES[input.dtype.name]}'")
    loss = ops.apply(_BCE, [input, target], "BinaryCrossEntropyBackward0")
    if weight is not None:
        loss = loss * ops.expand(weight, input.shape)
    return _reduce(loss, reduction)


def _softplus_neg(x):
    """``log(1 + exp(-x))`` as ``logsumexp([0, -x])``: no overflow for any ``x``, and its
    gradient ``-sigmoid(-x)`` is right everywhere (an ``|x|`` form's is not at 0)."""
    zero = Tensor._make(np.zeros(x._shape, x._npdtype))
    return ops.logsumexp(ops.stack([zero, -x]), 0)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """``binary_cross_entropy(sigmoid(input), target)`` computed stably from the logits:
    ``(1 - target) * input + (1 + (pos_weight - 1) * target) * log(1 + exp(-input))``.

    ``pos_weight`` weighs the positive term per class (broadcast along the last dimension);
    ``weight`` rescales each element's loss.
    """
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    _check_reduction(reduction)
    softplus = _softplus_neg(input)
    if pos_weight is not None:
        softplus = softplus * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input + softplus
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``target * (log(target) - input)`` of log-probabilities
    ``input`` from ``target`` (probabilities, or log-probabilities if ``log_target``).

    ``reduction="batchmean"`` divides the sum by the batch size (the KL divergence's
    definition); ``"mean"`` divides by the number of elements and warns, as PyTorch does.
    Where a target probability is 0, its gradient is ``-input`` (PyTorch's is NaN).
    """
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and "
                      "the support size.'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition.'mean' will be changed to "
                      "behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    elif reduction != "batchmean":
        _check_reduction(reduction)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        # xlogy(target, target): 0 where target is 0 (whose log is never taken)
        zero = target == 0
        loss = ops.where(zero, 0.0, target * ops.log(ops.where(zero, 1.0, target))) - \
            target * input
    if reduction == "batchmean":
        total = ops.sum(loss)
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)
