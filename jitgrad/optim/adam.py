"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""
import operator

from ..kernels.cpu import optim as kernels
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam with bias correction, optional AMSGrad and L2 (or, in AdamW, decoupled) weight decay.

    Per parameter, as PyTorch: ``m = lerp(m, g, 1 - beta1)``,
    ``v = beta2 * v + (1 - beta2) * g * g``, and
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``
    (``v`` replaced by its running maximum with ``amsgrad``).
    """

    _has_step = True
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=self._decoupled))

    def _state_names(self, group):
        names = ("exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if group["amsgrad"] else names

    _kernel = staticmethod(kernels.adam_step)
    _hyper = operator.itemgetter("lr", "betas", "eps", "weight_decay", "amsgrad",
                                 "decoupled_weight_decay", "maximize")

    def _args(self, group, arena):
        amsgrad = bool(group["amsgrad"])
        beta1, beta2 = group["betas"]
        lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
        rounded = arena.data.dtype.type
        return (arena.data, arena.grad, arena.buffer("exp_avg"), arena.buffer("exp_avg_sq"),
                arena.buffer("max_exp_avg_sq") if amsgrad else arena.data[:0],
                arena.offsets, arena.active, arena.steps, lr, float(beta1),
                float(beta2), float(group["eps"]), weight_decay, amsgrad,
                bool(group["decoupled_weight_decay"]), bool(group["maximize"]),
                float(rounded(beta2)), float(rounded(1 - lr * weight_decay)))


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam update."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
