"""In-place updates: ``inplace`` (version counters, views of the written tensor replayed
from their base) and ``setitem``."""
import builtins
import numpy as np

from .. import dtypes as dt
from .. import lazy as _lazy
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.grad_mode import no_grad
from ..core.shapes import flat_positions as _flat_positions
from ..tensor import Tensor
from .args import _C_NAMES, _check_operand, _wrap
from .dispatch import apply
from .index import _INDEX_PUT, _normalise_key, _run_index, getitem
from .shape import expand

_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to "
            "a single memory location. Please clone() the tensor before performing the "
            "operation.")


def _check_inplace(self):
    if is_grad_enabled():
        # as PyTorch, the view check first: a view made a leaf (``x[1::2].requires_grad_()``)
        # and a view of one (its base is the same leaf, which requires no grad) are views
        # of a leaf
        if self._view_fn is not None and self._base.grad_fn is None and (
                self._base._requires_grad or self._requires_grad):
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
        if self.grad_fn is None and self._requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation.")
    if not self._data.flags.writeable:
        raise RuntimeError(_OVERLAP)


def _castable(src, dst):
    return src.kind <= dst.kind


def inplace(self, compute, others=None):
    """Replace ``self``'s values by ``compute(old)`` and take over its history.

    ``old`` stands for ``self`` before the update (a copy when autograd may need
    the old values: ``others``, the other tensors ``compute`` reads when the caller
    knows them, lets an update that autograd cannot record skip the copy). On a
    view, the update is recorded on the base as a ``CopySlices`` and the view's
    ``grad_fn`` is remade from the base, as PyTorch does.
    """
    _check_inplace(self)
    if _lazy._tls.capture is not None:
        _lazy._tls.capture.fail("an in-place write")
    _lazy.flush()  # pending ops read the old values: compute them before the write
    _lazy.freeze()  # recorded grad_fns keep the versions and grad_fns they saw
    recording = is_grad_enabled() and (
        self._requires_grad or (self._view_fn is not None and self._base._requires_grad))
    old = self
    if is_grad_enabled() and (recording or others is None
                              or builtins.any(t._requires_grad for t in others)):
        old = Tensor._make(self._data.copy(), self._requires_grad)
        old.grad_fn, old._output_nr = self.grad_fn, self._output_nr
    new = compute(old)
    recording = recording or new._requires_grad
    if new.shape != self.shape:
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast "
                           f"shape {list(new.shape)}")
    if new.dtype is not self.dtype:
        if not _castable(new.dtype, self.dtype):
            raise RuntimeError(f"result type {_C_NAMES[new.dtype.name]} can't be cast to the "
                               f"desired output type {_C_NAMES[self.dtype.name]}")
        new = new.to(self.dtype)
    if not recording:
        np.copyto(self._data, new._data)
        self._vc[0] += 1
        return self
    if self._view_fn is None:
        np.copyto(self._data, new._data)
        self._vc[0] += 1
        self.grad_fn, self._output_nr, self._requires_grad = new.grad_fn, new._output_nr, True
        _refresh_views(self, None)
        return self
    base = self._base
    with no_grad():
        idx = self._view_fn(Tensor._make(
            np.arange(base.numel(), dtype=np.int64).reshape(base.shape)))._data
    updated = apply(_INDEX_PUT, [base, new], "CopySlices", idx=idx)
    np.copyto(base._data, updated._data)
    base._vc[0] += 1
    base.grad_fn, base._output_nr, base._requires_grad = updated.grad_fn, 0, True
    remade = _remake(self, base)
    self.grad_fn, self._output_nr, self._requires_grad = remade.grad_fn, remade._output_nr, True
    _refresh_views(base, self)
    return self


def _remake(view, base):
    """``view`` re-derived from ``base`` (for its grad_fn only: not registered as a view)."""
    views = base.__dict__.get("_views")
    try:
        return view._view_fn(base)
    finally:
        if views is None:
            base.__dict__.pop("_views", None)
        else:
            base.__dict__["_views"] = views


def _refresh_views(base, skip):
    """Other views of ``base`` now read changed values: give them grad_fns made from the
    base's new history, as PyTorch does when it sees the base's version moved."""
    refs = base.__dict__.get("_views")
    if not refs:
        return
    refs = list(refs)
    alive = []
    for r in refs:
        v = r()
        if v is None:
            continue
        alive.append(r)
        if v is not skip and v._view_fn is not None:
            remade = _remake(v, base)
            v.grad_fn, v._output_nr, v._requires_grad = (remade.grad_fn, remade._output_nr,
                                                         remade._requires_grad)
    base.__dict__["_views"] = alive


def setitem(self, key, value):
    """``self[key] = value``, recorded for autograd like PyTorch's ``CopySlices``."""
    _check_operand(value, "value")
    norm, advanced = _normalise_key(key, self.ndim)
    target_shape = _run_index(lambda: self._data[norm]).shape
    if isinstance(value, Tensor):
        vshape = value.shape
        try:
            np.broadcast_shapes(vshape, target_shape)
            if len(vshape) > len(target_shape) and builtins.any(
                    n != 1 for n in vshape[:len(vshape) - len(target_shape)]):
                raise ValueError
            if np.broadcast_shapes(vshape, target_shape) != target_shape:
                raise ValueError
        except ValueError:
            raise RuntimeError(
                f"The expanded size of the tensor ({target_shape[-1] if target_shape else 1}) "
                f"must match the existing size ({vshape[-1] if vshape else 1}) at non-singleton "
                f"dimension {len(target_shape) - 1}.  Target sizes: {list(target_shape)}.  "
                f"Tensor sizes: {list(vshape)}") from None
        if not _castable(value.dtype, self.dtype) and self.dtype is not dt.bool_:
            value = value.to(self.dtype)
    else:
        value = _wrap(value, self.dtype)
    if not advanced:
        view_ = getitem(self, norm)
        return inplace(view_, lambda old: expand(value.to(self.dtype), target_shape))
    idx = _flat_positions(self.shape, norm)
    return inplace(self, lambda old: apply(_INDEX_PUT, [old, value.to(self.dtype)],
                                           "IndexPutBackward0", idx=idx))
