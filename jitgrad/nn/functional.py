"""Stateless layer functions, as ``torch.nn.functional``.

Most are compositions of jitgrad ops, so autograd (and higher-order
gradients) come with them. Some primitives are new here and join the op
registry: ``im2col`` and its transpose ``col2im`` (each the other's VJP),
through which ``conv2d`` becomes one BLAS matmul and ``avg_pool2d`` a row
sum; ``erf`` for the exact GELU; ``max_pool2d`` with its backward
(``max_pool2d_scatter``) and that one's backward (``max_pool2d_gather``),
kernels that find each window's maximum themselves. The losses, with the
primitives of their own, are in ``losses.py``; activations in ``activations.py``. Where
jitgrad differs from PyTorch the docstring says so; ``grad_fn`` names are
those of the composed ops (``conv2d``'s output shows ``PermuteBackward0``, not
``ConvolutionBackward0``).
"""
import math
import numbers

import numpy as np

from .. import dtypes as dt
from .. import ops
from ..runtime.backends import cpu
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..kernels.cpu import conv as _conv
from ..kernels.cpu import interpreter as interp
from ..kernels.cpu import special as _special
from ..random import rand
from ..tensor import Tensor
from .losses import (mse_loss, nll_loss, cross_entropy, l1_loss, smooth_l1_loss, huber_loss,
                     binary_cross_entropy, binary_cross_entropy_with_logits, kl_div)  # noqa: F401
from .activations import (elu, hardtanh, leaky_relu, one_hot, relu6, silu,  # noqa: F401
                          softplus)

linear = ops.linear  # one fused primitive (AddmmBackward0, as PyTorch records it)
relu = ops.relu
tanh = ops.tanh
sigmoid = ops.sigmoid
softmax = ops.softmax
log_softmax = ops.log_softmax


# --- new primitives -------------------------------------------------------------------

def _im2col_forward(x, kernel, stride, padding, dilation, out_hw):
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    cols = np.empty((n,) + out_hw + (c,) + kernel, x.dtype)
    if cols.size:
        _conv.im2col(x, *stride, *padding, *dilation, cols)
    return cols.reshape(n * out_hw[0] * out_hw[1], c * kernel[0] * kernel[1])


def _col2im_forward(g, shape, kernel, stride, padding, dilation, out_hw):
    out = np.zeros(shape, g.dtype)
    cols = np.ascontiguousarray(g).reshape((shape[0],) + out_hw + (shape[1],) + kernel)
    if cols.size:
        _conv.col2im(cols, *stride, *padding, *dilation, out)
    return out


def _geometry(attrs):
    return {k: v for k, v in attrs.items() if k != "shape"}


def _im2col_meta(metas, kernel, stride, padding, dilation, out_hw):
    (n, c, _, _), dtype = metas[0]
    return [((n * out_hw[0] * out_hw[1], c * kernel[0] * kernel[1]), dtype)]


def _col2im_meta(metas, shape, **geometry):
    return [(tuple(shape), metas[0][1])]


def _window_row(lw, opcode, out, a, b, image, out_hw, kernel, stride, padding, dilation):
    lw.row(opcode, 0, out, a, b, dims=image, sa=(*out_hw, *kernel),
           sb=(*stride, *padding), sc=(*dilation, 0, 0))


def _lower_im2col(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    out = lw.new_out(p)
    _window_row(lw, interp.IM2COL, out, off, 0, shape, **p.attrs)
    return out


def _lower_col2im(lw, p):
    (g,) = p.inputs
    off, _ = lw.operand(g)
    out = lw.new_out(p)
    attrs = dict(p.attrs)
    _window_row(lw, interp.COL2IM, out, off, 0, attrs.pop("shape"), **attrs)
    return out


_IM2COL = ops.defop("im2col", _im2col_forward, lambda c, g: (ops.apply(
    _COL2IM, [g], "Col2ImBackward0", shape=tuple(c._inputs_meta[0][0]), **c.attrs),),
    meta=_im2col_meta, lower=_lower_im2col)
_COL2IM = ops.defop("col2im", _col2im_forward, lambda c, g: (ops.apply(
    _IM2COL, [g], "Im2ColBackward0", **_geometry(c.attrs)),), meta=_col2im_meta,
                    lower=_lower_col2im)


def _pool_forward(fn, operands):
    """Window kernel ``fn`` over ``(N, C, H, W)`` images; ``operands(*arrays)`` gives the
    values it reads and the image whose window maxima pick them (max pooling: both ``x``)."""
    def forward(*arrays, kernel, stride, padding, dilation, out_hw):
        v, x = operands(*arrays)
        x, v = np.ascontiguousarray(x), np.ascontiguousarray(v)
        image = x.shape if x.ndim == 4 else (1,) + x.shape  # (an unbatched image: N = 1)
        shape = _pooled(x.shape, out_hw) if fn is _conv.pool_gather else x.shape
        out = np.zeros(shape, v.dtype)
        if out.size:
            fn(v.reshape(v.shape if v.ndim == 4 else (1,) + v.shape), x.reshape(image),
               *kernel, *stride, *padding, *dilation,
               out.reshape(out.shape if out.ndim == 4 else (1,) + out.shape))
        return out
    return forward


def _pool_meta(shape_of):
    def meta(metas, kernel, stride, padding, dilation, out_hw):
        return [(shape_of(metas[-1][0], out_hw), metas[0][1])]  # (the image comes last)
    return meta


def _pooled(shape, out_hw):
    return tuple(shape[:-2]) + tuple(out_hw)


def _image(shape, out_hw):
    return tuple(shape)


# max pooling and its backward as window ops that find each window's maximum in the
# image themselves (the positions are never kept): recorded, lowered and run in one
# Program like any other op. ``max_pool2d_gather(v, x)`` takes ``v``'s values at ``x``'s
# window maxima, ``max_pool2d_scatter(g, x)`` adds ``g`` there; each is the other's VJP.
def _no_grad_for_image(c):
    """The image's gradient where it only picks positions: zero, as PyTorch gives it."""
    if not c.needs_input_grad[1]:
        return None
    shape, dtype = c._inputs_meta[1]
    return Tensor._make(np.zeros(shape, dtype))


def _lower_pool(opcode):
    def lower(lw, p):
        v, x = p.inputs if len(p.inputs) == 2 else p.inputs * 2  # max_pool2d: v is x
        (vo, _), (xo, image) = lw.operand(v), lw.operand(x)
        out = lw.new_out(p)
        _window_row(lw, opcode, out, vo, xo, image if len(image) == 4 else (1, *image),
                    **p.attrs)
        return out
    return lower


_MAX_POOL = ops.defop(
    "max_pool2d", _pool_forward(_conv.pool_gather, lambda x: (x, x)),
    lambda c, g: (ops.apply(_POOL_SCATTER, [g, c.saved(0)],
                            "MaxPool2DWithIndicesBackwardBackward0", **c.attrs),),
    (0,), meta=_pool_meta(_pooled), lower=_lower_pool(interp.POOL_GATHER))
_POOL_SCATTER = ops.defop(
    "max_pool2d_scatter", _pool_forward(_conv.pool_scatter, lambda g, x: (g, x)),
    lambda c, g: (ops.apply(_POOL_GATHER, [g, c.saved(1)], "MaxPool2DWithIndicesBackward0",
                            **c.attrs), _no_grad_for_image(c)),
    (1,), meta=_pool_meta(_image), lower=_lower_pool(interp.POOL_SCATTER))
_POOL_GATHER = ops.defop(
    "max_pool2d_gather", _pool_forward(_conv.pool_gather, lambda v, x: (v, x)),
    lambda c, g: (ops.apply(_POOL_SCATTER, [g, c.saved(1)],
                            "MaxPool2DWithIndicesBackwardBackward0", **c.attrs),
                  _no_grad_for_image(c)),
    (1,), meta=_pool_meta(_pooled), lower=_lower_pool(interp.POOL_GATHER))


def _erf_forward(x):
    x = cpu.contiguous(x)  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    out = np.empty(x.shape, x.dtype)
    _special.erf(x.reshape(-1), out.reshape(-1))
    return out


_ERF = ops.defop("erf", _erf_forward,
                 lambda c, g: (g * ops.exp(-(c.saved(0) * c.saved(0))) * (2 / math.sqrt(math.pi)),),
                 save=(0,))


def _im2col(x, kernel, stride, padding, dilation, out_hw):
    """Rows of receptive fields: ``(N*OH*OW, C*KH*KW)`` from ``(N, C, H, W)``."""
    return ops.apply(_IM2COL, [x], "Im2ColBackward0", kernel=kernel, stride=stride,
                     padding=padding, dilation=dilation, out_hw=out_hw)


def _erf(x):
    return ops.apply(_ERF, [x], "ErfBackward0")


# --- helpers --------------------------------------------------------------------------

def _pair(v):
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]),) * 2
        return tuple(int(a) for a in v)
    return (int(v), int(v))


def _batched(input, name):
    if input.ndim not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to {name}, but got input of size: "
            f"{list(input.shape)}" if name == "conv2d" else
            "non-empty 3D or 4D (batch mode) tensor expected for input")
    return (ops.unsqueeze(input, 0), True) if input.ndim == 3 else (input, False)


# --- activations ----------------------------------------------------------------------

def gelu(input, approximate="none"):
    """``x * Φ(x)`` with the exact normal CDF (``erf``), or its tanh approximation."""
    if approximate == "none":
        return input * 0.5 * (1.0 + _erf(input * (1 / math.sqrt(2))))
    if approximate == "tanh":
        inner = (input + 0.044715 * input * input * input) * math.sqrt(2 / math.pi)
        return input * 0.5 * (1.0 + ops.tanh(inner))
    raise RuntimeError("approximate argument must be either none or tanh.")


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``.

    The mask comes from jitgrad's global generator, so ``manual_seed`` repeats it.
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    d = input.dtype.np
    if p == 1.0:
        mask = np.zeros(input.shape, d)
    else:
        keep = rand(input.shape, dtype=input.dtype)._data >= d.type(p)
        mask = keep.astype(d) / d.type(1.0 - p)
    mask = Tensor._make(mask)
    return input.mul_(mask) if inplace else input * mask


# --- linear and convolution -----------------------------------------------------------

def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over ``(N, C, H, W)`` (or unbatched ``(C, H, W)``) input.

    ``padding`` is an int, a pair, ``'valid'`` or ``'same'`` (stride 1). Lowered to
    im2col and one matmul per group.
    """
    x, unbatched = _batched(input, "conv2d")
    n, c, h, w = x.shape
    if weight.ndim != 4:
        raise RuntimeError(f"weight should have 4 dimensions for conv2d, but got weight of "
                           f"size {list(weight.shape)}")
    o, cg, kh, kw = weight.shape
    if cg * groups != c:
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{list(input.shape)} to have {cg * groups} channels, "
                           f"but got {c} channels instead")
    if bias is not None and tuple(bias.shape) != (o,):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {o} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    stride, dilation = _pair(stride), _pair(dilation)
    if min(stride) <= 0:
        raise RuntimeError("non-positive stride is not supported")
    eff = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    if isinstance(padding, str):
        if padding == "valid":
            padding, out_hw = (0, 0), ((h - eff[0]) // stride[0] + 1, (w - eff[1]) // stride[1] + 1)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            padding, out_hw = ((eff[0] - 1) // 2, (eff[1] - 1) // 2), (h, w)
        else:
            raise ValueError(f"Invalid padding string '{padding}', should be one of "
                             "{'valid', 'same'}")
    else:
        padding = _pair(padding)
        if min(padding) < 0:
            raise RuntimeError("negative padding is not supported")
        out_hw = ((h + 2 * padding[0] - eff[0]) // stride[0] + 1,
                  (w + 2 * padding[1] - eff[1]) // stride[1] + 1)
    if h + 2 * padding[0] < eff[0] or w + 2 * padding[1] < eff[1]:
        raise RuntimeError(f"Calculated padded input size per channel: ({h + 2 * padding[0]} x "
                           f"{w + 2 * padding[1]}). Kernel size: ({eff[0]} x {eff[1]}). Kernel "
                           "size can't be greater than actual input size")
    cols = _im2col(x, (kh, kw), stride, padding, dilation, out_hw)
    w2 = ops.reshape(weight, (o, cg * kh * kw))
    if groups == 1:
        out = ops.mm(cols, ops.t(w2))
    else:
        k, og = cg * kh * kw, o // groups
        out = ops.cat([ops.mm(cols[:, g * k:(g + 1) * k], ops.t(w2[g * og:(g + 1) * og]))
                       for g in range(groups)], 1)
    if bias is not None:
        out = out + bias
    out = ops.permute(ops.reshape(out, (n,) + out_hw + (o,)), (0, 3, 1, 2))
    return ops.squeeze(out, 0) if unbatched else out


def _single(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 1 "
                               "values to match the convolution dimensions, but got "
                               f"{name}={list(v)}")
        return int(v[0])
    return int(v)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation over ``(N, C, L)`` (or unbatched ``(C, L)``) input; ``weight`` is
    ``(out_channels, in_channels / groups, kW)``.

    ``padding`` is an int, ``'valid'`` or ``'same'`` (stride 1; an even kernel pads one
    more on the right, as PyTorch). Runs as ``conv2d`` over a height-1 image: the same
    im2col rows and matmul, so the values are those of a 1-D convolution exactly.
    """
    if input.ndim not in (2, 3):
        raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv1d, but got "
                           f"input of size: {list(input.shape)}")
    if weight.ndim != 3:
        raise RuntimeError(f"Expected {weight.ndim}-dimensional input for {weight.ndim}-"
                           f"dimensional weight {list(weight.shape)}, but got {input.ndim}-"
                           f"dimensional input of size {list(input.shape)} instead"
                           if weight.ndim > 3 else "weight should have at least three dimensions")
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    o, cg, k = weight.shape
    c, length = input.shape[-2:]
    if stride <= 0:
        raise RuntimeError("non-positive stride is not supported")
    if dilation <= 0:
        raise RuntimeError("non-positive dilation is not supported")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if padding == "same" and stride != 1:
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pad = 0 if padding == "valid" else None
    else:
        padding = pad = _single(padding, "padding")
        if pad < 0:
            raise RuntimeError("negative padding is not supported")
    if cg * groups != c:
        shown = list(input.shape) if input.ndim == 3 else [1] + list(input.shape)
        raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                           f"expected input{shown} to have {cg * groups} channels, "
                           f"but got {c} channels instead")
    if bias is not None and tuple(bias.shape) != (o,):
        raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be "
                           f"1-dimensional with {o} elements, but got bias of size "
                           f"{list(bias.shape)} instead")
    if pad is not None and length + 2 * pad < dilation * (k - 1) + 1:
        raise RuntimeError(f"Calculated padded input size per channel: ({length + 2 * pad}). "
                           f"Kernel size: ({dilation * (k - 1) + 1}). Kernel size can't be "
                           "greater than actual input size")
    out = conv2d(ops.unsqueeze(input, -2), ops.unsqueeze(weight, 2), bias, (1, stride),
                 padding if isinstance(padding, str) else (0, pad), (1, dilation), groups)
    return ops.squeeze(out, -2)


# --- pooling --------------------------------------------------------------------------

def _pool_args(kernel_size, stride, padding, dilation):
    k = _pair(kernel_size)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _pair(stride)
    p, d = _pair(padding), _pair(dilation)
    if min(s) <= 0:
        raise RuntimeError("stride should be greater than zero, but got strideH: "
                           f"{s[0]} strideW: {s[1]}")
    if k[0] // 2 < p[0] or k[1] // 2 < p[1]:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                           f"pad={p[0] if k[0] // 2 < p[0] else p[1]}, kernel_size="
                           f"{k[0] if k[0] // 2 < p[0] else k[1]} and dilation="
                           f"{d[0] if k[0] // 2 < p[0] else d[1]}")
    return k, s, p, d


def _pool_out(size, k, s, p, d, ceil_mode):
    """PyTorch's ``pooling_output_shape``: a ceil-mode window must start inside the input."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_shape(x, k, s, p, d, ceil_mode):
    _, c, h, w = x.shape
    oh, ow = _pool_out(h, k[0], s[0], p[0], d[0], ceil_mode), \
        _pool_out(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                           f"({c}x{oh}x{ow}). Output size is too small")
    return oh, ow


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """The maximum of each window; ``return_indices`` adds each max's flat ``H*W`` position."""
    x, unbatched = _batched(input, "max_pool2d")
    k, s, p, d = _pool_args(kernel_size, stride, padding, dilation)
    oh, ow = _pool_shape(x, k, s, p, d, ceil_mode)
    n, c, h, w = x.shape
    if not return_indices and x.dtype.is_floating_point:
        return ops.apply(_MAX_POOL, [input], "MaxPool2DWithIndicesBackward0", kernel=k,
                         stride=s, padding=p, dilation=d, out_hw=(oh, ow))
    idx = np.empty((n, c, oh, ow), np.int64)
    if idx.size:
        _conv.max_pool2d_index(np.ascontiguousarray(x._data), *k, *s, *p, *d, idx)
    out = ops.take(x, idx)
    if unbatched:
        out, idx = ops.squeeze(out, 0), idx[0]
    if return_indices:
        return out, Tensor._make(idx % (h * w))
    return out


def _avg_divisor(size, k, s, p, out, count_include_pad):
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """The mean of each window (zero padding counts unless ``count_include_pad=False``)."""
    x, unbatched = _batched(input, "avg_pool2d")
    k, s, p, _ = _pool_args(kernel_size, stride, padding, 1)
    oh, ow = _pool_shape(x, k, s, p, (1, 1), ceil_mode)
    n, c, h, w = x.shape
    cols = _im2col(ops.reshape(x, (n * c, 1, h, w)), k, s, p, (1, 1), (oh, ow))
    sums = ops.reshape(ops.sum(cols, 1), (n, c, oh, ow))
    if divisor_override:
        out = sums / float(divisor_override)
    else:
        div = np.outer(_avg_divisor(h, k[0], s[0], p[0], oh, count_include_pad),
                       _avg_divisor(w, k[1], s[1], p[1], ow, count_include_pad))
        out = sums / Tensor._make(div.astype(x.dtype.np))
    return ops.squeeze(out, 0) if unbatched else out


# --- normalisation and embedding --------------------------------------------------------

def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` dims (biased variance), scale, shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) \
        else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape or input.ndim < len(shape):
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"{list(input.shape)}")
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    centred = input - ops.mean(input, dims, keepdim=True)
    var = ops.mean(centred * centred, dims, keepdim=True)
    out = centred * ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Normalise each channel (dim 1) of ``(N, C, *)`` input, then scale by ``weight`` and
    shift by ``bias`` (each ``(C,)``).

    With ``training`` the batch's mean and biased variance normalise, and
    ``running_mean``/``running_var``, where given, move towards the batch mean and
    *unbiased* variance: ``running = (1 - momentum) * running + momentum * batch``, in
    place and outside autograd, as PyTorch does. Otherwise the running statistics
    normalise.
    """
    c = input.shape[1] if input.ndim > 1 else 0
    if training:
        n = input.numel() // c if c else 0
        if n == 1:
            raise ValueError("Expected more than 1 value per channel when training, got "
                             f"input size {input.shape}")
        if eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    elif eps < 0.0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != c:
            raise RuntimeError(f"{name} should contain {c} elements not {t.numel()}")
        if t is None and name.startswith("running") and not training:
            raise RuntimeError(f"{name} must be defined in evaluation mode")
    shape = (1, c) + (1,) * (input.ndim - 2)  # a (C,) vector against dim 1
    if training:
        dims = (0,) + tuple(range(2, input.ndim))
        mean = ops.mean(input, dims, keepdim=True)
        centred = input - mean
        var = ops.mean(centred * centred, dims, keepdim=True)
        out = centred * ops.rsqrt(var + eps)
        with no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(ops.reshape(mean, (c,)), alpha=momentum)
            if running_var is not None:
                running_var.mul_(1 - momentum).add_(ops.reshape(var, (c,)),
                                                    alpha=momentum * n / (n - 1))
    else:
        out = (input - ops.reshape(running_mean, shape)) * ops.rsqrt(
            ops.reshape(running_var, shape) + eps)
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` at the positions in ``input``; ``padding_idx``'s row gets no gradient."""
    if input.dtype not in (dt.int64, dt.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"{input.type()} instead (while checking arguments for embedding)")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("jitgrad's embedding supports neither max_norm, "
                                  "scale_grad_by_freq nor sparse")
    rows, cols = weight.shape
    idx = input._data.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        raise IndexError("index out of range in self")
    if padding_idx is not None and weight.requires_grad and is_grad_enabled():
        keep = np.ones((rows, 1), np.bool_)
        keep[padding_idx] = False
        weight = ops.where(Tensor._make(keep), weight, weight.detach())
    return ops.take(weight, idx[..., None] * cols + np.arange(cols))
