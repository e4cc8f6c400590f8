"""``Parameter``: a tensor that a ``Module`` registers as one of its weights."""
import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad and that modules list in ``parameters()``.

    ``Parameter(data)`` shares ``data``'s storage and version counter, as in
    PyTorch. Ops on a parameter return plain tensors.
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = Tensor._make(np.empty(0, np.float32))
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter(): argument 'data' must be Tensor, not "
                            f"{type(data).__name__}")
        if requires_grad and not data.dtype.is_floating_point:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require "
                               "gradients")
        self._init(data._data, bool(requires_grad), data._vc)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__
