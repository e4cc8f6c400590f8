"""Adagrad, as ``torch.optim.Adagrad``."""
import operator

from ..kernels.cpu import optim as kernels
from .optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay and L2 weight decay.

    Per parameter, as PyTorch: at step ``t``, ``g = grad (+ weight_decay * p)``,
    ``sum += g * g`` and ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)``,
    with ``sum`` starting at ``initial_accumulator_value``. As in PyTorch, every
    parameter's state (``step`` 0 and ``sum``) exists from construction on.
    """

    _has_step = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if fused and differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))
        for group, arenas in zip(self.param_groups, self._arenas):
            for arena in arenas:
                for i, p in enumerate(arena.params):
                    self.state[p] = self._state_views(group, arena, i)
                    self._stated += 1

    def add_param_group(self, param_group):
        """Add a group of parameters; their ``sum`` starts at the optimizer's
        ``initial_accumulator_value`` (PyTorch reads it from the defaults, not the group)."""
        super().add_param_group(param_group)
        for arena in self._arenas[-1]:
            arena.buffer("sum")[...] = self.defaults["initial_accumulator_value"]

    def _state_names(self, group):
        return ("sum",)

    _kernel = staticmethod(kernels.adagrad_step)
    _hyper = operator.itemgetter("lr", "lr_decay", "eps", "weight_decay", "maximize")

    def _args(self, group, arena):
        return (arena.data, arena.grad, arena.buffer("sum"), arena.offsets, arena.active,
                arena.steps, float(group["lr"]), float(group["lr_decay"]), float(group["eps"]),
                float(group["weight_decay"]), bool(group["maximize"]))
