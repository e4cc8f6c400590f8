"""RMSprop, as ``torch.optim.RMSprop``."""
import operator

from ..kernels.cpu import optim as kernels
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop with optional centering, momentum and L2 weight decay.

    Per parameter, as PyTorch: ``g = grad (+ weight_decay * p)``,
    ``v = alpha * v + (1 - alpha) * g * g``; with ``centered``,
    ``g_avg = lerp(g_avg, g, 1 - alpha)`` and ``v~ = v - g_avg**2`` (else ``v~ = v``);
    ``avg = sqrt(v~) + eps``; with momentum ``buf = momentum * buf + g / avg`` and
    ``p -= lr * buf``, else ``p -= lr * g / avg``.
    """

    _has_step = True

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        # capturable, foreach and differentiable choose among PyTorch's implementations of
        # one formula; they are kept in the param groups (as PyTorch's state_dict has them)
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def _state_names(self, group):
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))

    _kernel = staticmethod(kernels.rmsprop_step)
    _hyper = operator.itemgetter("lr", "alpha", "eps", "weight_decay", "momentum", "centered",
                                 "maximize")

    def _args(self, group, arena):
        centered, momentum = bool(group["centered"]), float(group["momentum"])
        rounded = arena.data.dtype.type
        none = arena.data[:0]
        return (arena.data, arena.grad, arena.buffer("square_avg"),
                arena.buffer("grad_avg") if centered else none,
                arena.buffer("momentum_buffer") if momentum > 0 else none,
                arena.offsets, arena.active, arena.steps, float(group["lr"]),
                float(group["alpha"]), float(group["eps"]), float(group["weight_decay"]),
                momentum, centered, bool(group["maximize"]),
                float(rounded(group["alpha"])), float(rounded(momentum)),
                float(rounded(1.0 - group["alpha"])))
