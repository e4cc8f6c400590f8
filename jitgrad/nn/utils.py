"""``torch.nn.utils``: gradient clipping, and parameters as one flat vector.

``clip_grad_norm_`` follows PyTorch step by step: the norm of each gradient, the
norm of those norms, the factor ``max_norm / (total + 1e-6)`` clamped to at most
1, and every gradient multiplied by it in place (so a training step's gradients
stay where the optimizer reads them).
"""
import math

from .. import ops
from ..autograd.grad_mode import no_grad
from ..tensor import Tensor, zeros

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector",
           "vector_to_parameters"]


def _tensors(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm(x, p):
    """The ``p``-norm of ``x``'s elements (``torch.linalg.vector_norm``)."""
    if p == math.inf:
        return ops.amax(ops.abs(x)) if x.numel() else zeros((), dtype=x.dtype)
    if p == -math.inf:
        return ops.amin(ops.abs(x))
    if p == 0:
        return ops.sum(x != 0).to(x.dtype)
    if p == 1:
        return ops.sum(ops.abs(x))
    if p == 2:
        return ops.sqrt(ops.sum(x * x))
    return ops.sum(ops.abs(x) ** p) ** (1.0 / p)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None):
    """Scale the gradients of ``parameters`` in place so their joint ``norm_type``-norm is
    at most ``max_norm``; returns that norm (before clipping) as a tensor."""
    grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return zeros(())
    with no_grad():
        norms = [_norm(g, norm_type) for g in grads]
        total = _norm(ops.stack(norms) if len(norms) > 1 else norms[0], norm_type)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
        factor = ops.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(factor)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _tensors(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)


def parameters_to_vector(parameters):
    """All of ``parameters`` flattened and joined into one 1-D tensor."""
    return ops.cat([ops.reshape(p, (-1,)) for p in _tensors(parameters)])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of 1-D ``vec`` into ``parameters`` (each param's ``data``)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    start = 0
    for p in _tensors(parameters):
        n = p.numel()
        p.data = ops.reshape(vec[start:start + n], p.shape).data
        start += n
