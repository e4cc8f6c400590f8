"""Anomaly detection: find the backward function that produced NaN gradients."""
import threading
import warnings

_state = threading.local()


def is_anomaly_enabled():
    return getattr(_state, "enabled", False)


def is_anomaly_check_nan_enabled():
    return getattr(_state, "check_nan", True)


def _set(enabled, check_nan):
    _state.enabled, _state.check_nan = bool(enabled), bool(check_nan)


class detect_anomaly:
    """Context manager (and decorator) under which a backward function returning NaN raises
    ``RuntimeError: Function 'XBackward0' returned nan values in its 0th output.``
    Gradients are then computed node by node (lazy mode's cached Programs are skipped)."""

    def __init__(self, check_nan=True):
        self.check_nan = check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the runtime "
                      "and should only be enabled for debugging.", UserWarning, stacklevel=2)

    def __enter__(self):
        self._prev = (is_anomaly_enabled(), is_anomaly_check_nan_enabled())
        _set(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        _set(*self._prev)
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with self.__class__(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


class set_detect_anomaly:
    """Turn anomaly detection on or off, as a function or a context manager."""

    def __init__(self, mode, check_nan=True):
        self._prev = (is_anomaly_enabled(), is_anomaly_check_nan_enabled())
        _set(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(*self._prev)
        return False


def check_grads(node, grads):
    """Raise PyTorch's error when ``node`` returned NaN gradients (anomaly mode only)."""
    if not (is_anomaly_enabled() and is_anomaly_check_nan_enabled()):
        return
    import numpy as np
    for i, g in enumerate(grads):
        if g is not None and g.dtype.is_floating_point and np.isnan(g._data).any():
            raise RuntimeError(f"Function '{node.name()}' returned nan values in its {i}th "
                               "output.")
