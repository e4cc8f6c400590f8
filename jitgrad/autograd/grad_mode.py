"""Grad-mode switches: ``no_grad``, ``enable_grad``, ``set_grad_enabled``, ``inference_mode``."""
import functools
import threading

class _State(threading.local):
    enabled = True  # each thread starts with grad mode on (a class default: fast to read)


_state = _State()


def is_grad_enabled():
    """True when ops record history for autograd (the default)."""
    return _state.enabled


_listeners = []  # told each new mode of the thread that set it (see on_set)


def on_set(listener):
    """Call ``listener(enabled)`` whenever a thread sets its grad mode, in that thread (the
    lazy recorder keeps a copy of it on the segment it records)."""
    _listeners.append(listener)


def _set(enabled):
    _state.enabled = enabled = bool(enabled)
    for listener in _listeners:
        listener(enabled)


class _Mode:
    """Base of the context managers; each also works as a function decorator."""

    enabled = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.enabled)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(*self._args):
                return fn(*args, **kwargs)
        return wrapper

    _args = ()


class no_grad(_Mode):
    """Context manager (and decorator) that disables gradient tracking."""

    enabled = False


class enable_grad(_Mode):
    """Context manager (and decorator) that enables gradient tracking."""

    enabled = True


class set_grad_enabled(_Mode):
    """Enable or disable gradient tracking; works as a function, a context manager or a decorator."""

    def __init__(self, mode):
        self.enabled = bool(mode)
        self._args = (mode,)
        self._prev = is_grad_enabled()
        _set(mode)

    def __call__(self, fn):
        _set(self._prev)  # used as a decorator: the mode applies only inside ``fn``
        return super().__call__(fn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False


class inference_mode(_Mode):
    """Like ``no_grad`` (jitgrad has no separate inference tensors)."""

    def __init__(self, mode=True):
        self.enabled = not mode
        self._args = (mode,)
