"""Lazy mode: ops record into segments; realization runs a segment as one Program.

In lazy mode an op checks its arguments and appends a ``Pending`` output to the
current ``Segment`` instead of computing. When a value is needed (``.item()``,
``print``, ``backward()``, an in-place write, ``realize()``), the whole segment
is lowered into a ``Program`` (one instruction table over one arena) and run by
the native interpreter (``kernels/cpu/interpreter.py``) in a single call; then
recording starts a new segment. A realized segment hands out each output's
value (a view of the arena) when first asked for.

Recording walks a trie of op sequences. Each op's key names the op, whether
autograd records it, its attributes, and where each operand comes from (an
earlier output of the segment, or a realized input described by shape, dtype
and autograd flags at first use). A key already seen after the same prefix
skips the shape/dtype rules, and the trie node at the end of a segment holds its
Program, so a training loop lowers once and afterwards only records and binds.
A ``loss.backward()`` that was seen before at the same trie node replays forward
and backward from one cached Program without running the autograd engine.

Grad_fn objects are made only when something asks for one (``.grad_fn``, a
backward pass that cannot be replayed), and before any version counter, grad_fn
or ``requires_grad`` changes (``freeze``), so they are the nodes eager mode would
have made. What the user observes is eager mode's: values, views that alias
their input's storage, versions, grad_fns and errors (raised at the call site);
an op the interpreter does not cover runs eagerly on realized inputs.

Each thread records into its own segment (and has its own jitgrad.jit capture);
a pending tensor handed to another thread is computed when that thread reads it.
"""
from .. import tensor as _tensor
from ..autograd import grad_mode as _grad_mode
from ..core.state import _STATE, _leaf_epoch, _module_epoch, _stats  # noqa: F401  (nn, optim, jit read these here)
from ..runtime.program import Program
from .api import get_mode, is_lazy, jit_stats, set_mode
from .deferred import freeze, materialize
from .realization import changing, flush, realize, settle, _realize_tensor
from .recorder import ALIAS, _layout, alias, binary_lane, record, unary_lane
from .segment import Pending, Segment, _tls
from .step_cache import (CachedStep, home_grad, release_home, run_cached_step,
                         train_step)

__all__ = ["ALIAS", "Pending", "Program", "Segment", "alias", "binary_lane", "changing",
           "flush", "freeze", "get_mode", "home_grad", "is_lazy", "jit_stats", "materialize",
           "realize", "record", "release_home", "run_cached_step", "set_mode", "settle",
           "train_step", "unary_lane"]

_tensor.install_runtime(_realize_tensor, Pending, materialize, changing, _tls, alias)


def _grad_mode_set(enabled):
    _tls.rec.grad = enabled


_grad_mode.on_set(_grad_mode_set)
