"""Automatic differentiation: ``backward``, ``grad``, grad modes, ``gradcheck``."""
from .anomaly_mode import (detect_anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled,
                           set_detect_anomaly)
from .engine import backward, grad
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                        set_grad_enabled)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .graph import Node

__all__ = ["backward", "grad", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
           "is_anomaly_check_nan_enabled", "enable_grad", "inference_mode", "is_grad_enabled", "no_grad",
           "set_grad_enabled", "gradcheck", "gradgradcheck", "GradcheckError", "Node"]
from .function import Function, FunctionCtx, once_differentiable  # noqa: E402

__all__ += ["Function", "FunctionCtx", "once_differentiable"]
