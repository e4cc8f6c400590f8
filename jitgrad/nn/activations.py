"""Activation functions of ``torch.nn.functional`` built from other ops: ``leaky_relu``,
``elu``, ``silu``, ``softplus``, ``hardtanh``, ``relu6``, and ``one_hot`` (from
``ops.arrange``). ``nn.functional`` exports them and the modules (``nn.LeakyReLU``, ...)
call them, so each is written once.

Each composite's last op is recorded under PyTorch's grad_fn name (``LeakyReluBackward0``,
``EluBackward0``, ``SiluBackward0``, ``SoftplusBackward0``, ``HardtanhBackward0``); its
gradient is PyTorch's, at the kinks included (``leaky_relu`` at 0 takes the slope,
``hardtanh`` passes none at its bounds), and differentiable again. ``inplace=True`` writes
the result into ``input`` (computed from a copy, so a value autograd saved is not
overwritten), as the modules' ``inplace`` flag does.
"""
from .. import ops
from ..ops.arrange import named_where, one_hot
from ..ops.elementwise import _MUL

__all__ = ["elu", "hardtanh", "leaky_relu", "one_hot", "relu6", "silu", "softplus"]


def _maybe_inplace(input, inplace, fn):
    return input.copy_(fn(input.clone())) if inplace else fn(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    return _maybe_inplace(input, inplace, lambda x: named_where(
        x > 0, x, x * negative_slope, "LeakyReluBackward0"))


def elu(input, alpha=1.0, inplace=False):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    # exp of min(x, 0): a large positive x would overflow exp, and the unselected branch's
    # zero gradient times inf would be NaN
    return _maybe_inplace(input, inplace, lambda x: named_where(
        x > 0, x, (ops.exp(ops.clamp_max(x, 0)) - 1) * alpha, "EluBackward0"))


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (the swish)."""
    def fn(x):
        if not x.dtype.is_floating_point:
            return x * ops.sigmoid(x)
        return ops.apply(_MUL, [x, ops.sigmoid(x)], "SiluBackward0", dtype=x.dtype.np)
    return _maybe_inplace(input, inplace, fn)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x > threshold``.

    Computed as ``logsumexp([0, beta * x]) / beta``: no overflow for any ``x``, and the
    gradient ``sigmoid(beta * x)`` right everywhere. (PyTorch uses ``log1p``; for very
    negative ``beta * x`` the results differ by less than ``exp(beta * x)`` times a
    rounding error, absolutely.)
    """
    z = input * beta if beta != 1 else input
    zero = ops.expand(ops._wrap(0, z.dtype), z.shape)
    soft = ops.logsumexp(ops.stack([zero, z]), 0)
    if beta != 1:
        soft = soft / beta
    return named_where(z > threshold, input, soft, "SoftplusBackward0")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``x`` clamped to ``[min_val, max_val]``; the gradient is 1 strictly inside, else 0."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")

    def fn(x):
        inner = ops.where(x >= max_val, max_val, x)
        return named_where(x <= min_val, min_val, inner, "HardtanhBackward0")
    return _maybe_inplace(input, inplace, fn)


def relu6(input, inplace=False):
    """``min(max(x, 0), 6)`` (``hardtanh(x, 0, 6)``, as PyTorch computes it)."""
    return hardtanh(input, 0.0, 6.0, inplace)
