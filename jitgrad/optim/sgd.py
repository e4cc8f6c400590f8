"""Stochastic gradient descent, as ``torch.optim.SGD``."""
import operator

from ..kernels.cpu import optim as kernels
from .optimizer import Optimizer, required


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay.

    Per parameter, as PyTorch: ``g = grad (+ weight_decay * p)``; with momentum
    ``buf = g`` on the first step, else ``buf = momentum * buf + (1 - dampening) * g``,
    and ``g = g + momentum * buf`` (Nesterov) or ``g = buf``; then ``p -= lr * g``.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    _kernel = staticmethod(kernels.sgd_step)
    _hyper = operator.itemgetter("lr", "momentum", "dampening", "weight_decay", "nesterov",
                                 "maximize")

    def _args(self, group, arena):
        rounded = arena.data.dtype.type
        return (arena.data, arena.grad, arena.buffer("momentum_buffer"), arena.offsets,
                arena.active, arena.flags, float(group["lr"]),
                float(rounded(group["momentum"])), float(group["dampening"]),
                float(group["weight_decay"]), bool(group["nesterov"]), bool(group["maximize"]))
