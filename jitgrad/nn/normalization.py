"""Batch normalisation, as ``torch.nn.BatchNorm1d``/``BatchNorm2d``.

Running statistics live in buffers (``running_mean``, ``running_var``,
``num_batches_tracked``) under PyTorch's ``state_dict`` keys; ``F.batch_norm``
updates them in place outside autograd, so a lazy training step records the
update with the rest of the step.
"""
from .. import dtypes as dt
from ..tensor import empty, ones, tensor, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _NormBase(Module):
    """The parameters and buffers of a normalisation over ``num_features`` channels.

    ``weight`` (ones) and ``bias`` (zeros) exist with ``affine`` (``bias`` only with
    ``bias=True``); ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (int64 0) with ``track_running_stats``, else they are None.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        d = dtype or dt.get_default_dtype()
        if affine:
            self.weight = Parameter(empty(num_features, dtype=d))
            if bias:
                self.bias = Parameter(empty(num_features, dtype=d))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=d))
            self.register_buffer("running_var", ones(num_features, dtype=d))
            self.register_buffer("num_batches_tracked", tensor(0, dtype=dt.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self):
        """Running mean to zeros, running variance to ones, the batch count to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")

    def _load_from_state_dict(self, state_dict, prefix, assign, missing, unexpected, errors):
        # PyTorch accepts a state_dict without the batch count (saved before it existed, or
        # one without version metadata, which is every jitgrad state_dict): the module
        # keeps its own count
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict:
            state_dict = {**state_dict, key: self.num_batches_tracked}
        super()._load_from_state_dict(state_dict, prefix, assign, missing, unexpected, errors)


class _BatchNorm(_NormBase):
    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average: the count is read here
                factor = 1.0 / float(self.num_batches_tracked)
        # batch statistics normalise in training, and in eval when there are no running ones
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` input, per channel ``C``.

    Arguments as ``torch.nn.BatchNorm1d``: ``num_features, eps=1e-5, momentum=0.1,
    affine=True, track_running_stats=True``; ``momentum=None`` keeps a cumulative
    average. Training normalises by the batch's biased variance and tracks the unbiased
    one; eval normalises by the running statistics.
    """

    def _check_input_dim(self, input):
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)`` input, per channel ``C``; arguments and
    behaviour as ``BatchNorm1d``."""

    def _check_input_dim(self, input):
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")
