"""Automatic differentiation: ``backward``, ``grad``, grad modes, ``gradcheck``."""
from .engine import backward, grad
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                        set_grad_enabled)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .graph import Node

__all__ = ["backward", "grad", "enable_grad", "inference_mode", "is_grad_enabled", "no_grad",
           "set_grad_enabled", "gradcheck", "gradgradcheck", "GradcheckError", "Node"]
