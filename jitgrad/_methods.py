"""Tensor methods and operators, bound to the functions in ``ops``."""
import numbers

import numpy as np

from . import dtypes as dt
from . import ops
from .kernels.cpu import elementwise as ew
from .kernels.cpu import interpreter as interp
from .runtime.backends import cpu
from .autograd.engine import backward as _engine_backward
from .lazy import run_cached_step
from .tensor import Tensor, _check_device, device as _device, result_type


def _method(fn):
    return lambda self, *args, **kwargs: fn(self, *args, **kwargs)


# ops whose method form is the function with ``self`` first
for _name in (
        "neg exp log sqrt rsqrt sin cos tanh sigmoid relu abs sign reciprocal square "
        "add sub mul div true_divide divide multiply subtract floor_divide remainder fmod pow "
        "maximum minimum eq ne lt le gt ge greater greater_equal less less_equal not_equal "
        "logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor "
        "equal allclose isnan isfinite masked_fill clamp clip clamp_min clamp_max clone "
        "contiguous sum mean prod amax amin argmax argmin max min all any var std logsumexp "
        "softmax log_softmax mm bmm dot mv matmul reshape view flatten unflatten squeeze "
        "unsqueeze permute transpose swapaxes swapdims t expand expand_as broadcast_to "
        "sum_to_size split chunk unbind take select narrow index_select").split():
    setattr(Tensor, _name, _method(getattr(ops, _name)))

Tensor.sum, Tensor.mean = ops.sum, ops.mean  # the tensor first: bound as they are

# unary functions take the tensor first: bound as they are (their lazy lane included)
for _name in "exp log sqrt rsqrt sin cos tanh sigmoid relu reciprocal neg abs sign".split():
    setattr(Tensor, _name, getattr(ops, _name))

Tensor.negative = Tensor.neg
Tensor.absolute = Tensor.abs
Tensor.where = lambda self, condition, other: ops.where(condition, self, other)
Tensor.view_as = lambda self, other: ops.view(self, other.shape)
Tensor.reshape_as = lambda self, other: ops.reshape(self, other.shape)
Tensor.T = property(lambda self: self if self.ndim < 2 else ops.permute(
    self, tuple(range(self.ndim - 1, -1, -1))))
Tensor.mT = property(lambda self: ops.transpose(self, -2, -1))


def _binary(fn, reflected=False):
    def method(self, other):
        if not isinstance(other, (Tensor, numbers.Number, np.generic)):
            return NotImplemented
        return fn(other, self) if reflected else fn(self, other)
    return method


# as in PyTorch, ``2 * x`` is ``x.mul(2)``: the tensor stays the first operand
# (with lazy mode's lane in front: see ops._binary_lane)
Tensor.__add__ = Tensor.__radd__ = ops._binary_lane(ops._ADD, "AddBackward0", _binary(ops._add))
Tensor.__sub__ = ops._binary_lane(ops._SUB, "SubBackward0", _binary(ops._sub))
Tensor.__mul__ = Tensor.__rmul__ = ops._binary_lane(ops._MUL, "MulBackward0", _binary(ops._mul))
Tensor.__truediv__ = ops._binary_lane(ops._DIV, "DivBackward0", _binary(ops._div))
Tensor.__floordiv__ = _binary(ops.floor_divide)
Tensor.__rfloordiv__ = _binary(ops.floor_divide, reflected=True)
Tensor.__mod__ = _binary(ops.remainder)
Tensor.__rmod__ = _binary(ops.remainder, reflected=True)
Tensor.__pow__ = _binary(ops.pow)
Tensor.__rpow__ = _binary(ops.pow, reflected=True)
Tensor.__matmul__ = lambda self, other: (ops.matmul(self, other)
                                         if isinstance(other, Tensor) else NotImplemented)
Tensor.__rmatmul__ = lambda self, other: (ops.matmul(other, self)
                                          if isinstance(other, Tensor) else NotImplemented)
Tensor.__eq__ = _binary(ops.eq)
Tensor.__ne__ = _binary(ops.ne)
Tensor.__lt__ = _binary(ops.lt)
Tensor.__le__ = _binary(ops.le)
Tensor.__gt__ = _binary(ops.gt)
Tensor.__ge__ = _binary(ops.ge)
Tensor.__and__ = Tensor.__rand__ = _binary(ops.bitwise_and)
Tensor.__or__ = Tensor.__ror__ = _binary(ops.bitwise_or)
Tensor.__xor__ = Tensor.__rxor__ = _binary(ops.bitwise_xor)
Tensor.__neg__ = ops.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = ops.abs
Tensor.__getitem__ = ops.getitem
Tensor.__setitem__ = ops.setitem


def _invert(self):
    if self.dtype is not dt.bool_:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type "
                        "tensors")
    return ops.logical_not(self)


Tensor.__invert__ = Tensor.bitwise_not = _invert


def _rsub(self, other):
    if not isinstance(other, (numbers.Number, np.generic)):
        return NotImplemented
    return ops.apply(_RSUB, [self], "RsubBackward1", scalar=other,
                     dtype=result_type(self, other).np)


def _lower_rsub(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    s = lw.constant(p.attrs["scalar"])
    lw.elementwise(interp.BINARY, ew.SUB, out, p.shape, [(s, (), None), (*lw.operand(x), None)])
    return out


_RSUB = ops.defop("rsub", lambda x, scalar, dtype: cpu.binary(
    ew.SUB, np.array(scalar, dtype), ops._as(x, dtype), dtype), lambda c, g: (-g,),
    meta=ops._cast_meta, lower=_lower_rsub)
Tensor.__rsub__ = _rsub


def _rtruediv(self, other):
    if not isinstance(other, (numbers.Number, np.generic)):
        return NotImplemented
    return ops.mul(ops.reciprocal(self), other)


Tensor.__rtruediv__ = _rtruediv


# --- in-place variants ---------------------------------------------------------------

def _inplace_method(fn):
    def method(self, *args, **kwargs):
        others = [a for a in (*args, *kwargs.values()) if isinstance(a, Tensor)]
        return ops.inplace(self, lambda old: fn(old, *args, **kwargs), others)
    return method


for _name in ("add sub mul div pow clamp clip clamp_min clamp_max neg exp log sqrt sin cos "
              "tanh sigmoid relu abs sign reciprocal masked_fill floor_divide remainder "
              "maximum minimum").split():
    setattr(Tensor, _name + "_", _inplace_method(getattr(ops, _name)))

Tensor.__iadd__ = _inplace_method(ops.add)
Tensor.__isub__ = _inplace_method(ops.sub)
Tensor.__imul__ = _inplace_method(ops.mul)
Tensor.__itruediv__ = _inplace_method(ops.div)
Tensor.__ipow__ = _inplace_method(ops.pow)


def _overwrite(self, src, name):
    """Replace ``self``'s values by ``src`` (broadcast); autograd sees a node named ``name``
    that passes no gradient to the old values, as PyTorch's fill/copy/random nodes do."""
    return ops.inplace(self, lambda old: ops.apply(ops.OVERWRITE, [old, src], name))


def zero_(self):
    """Fill with zeros in place."""
    return _overwrite(self, ops._wrap(0, self.dtype), "ZeroBackward0")


def fill_(self, value):
    """Fill with ``value`` (a number or a one-element tensor) in place."""
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError("fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value.ndim} dimensions.")
        return _overwrite(self, value, "FillBackward3")
    return _overwrite(self, ops._wrap(value, self.dtype), "FillBackward2")


def copy_(self, src, non_blocking=False):
    """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor in place."""
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'other' must be Tensor, not {type(src).__name__}")
    ops._broadcast_shape(src.shape, self.shape)
    if ops._broadcast_shape(src.shape, self.shape) != tuple(self.shape):
        raise RuntimeError(f"output with shape {list(self.shape)} doesn't match the broadcast "
                           f"shape {list(ops._broadcast_shape(src.shape, self.shape))}")
    return _overwrite(self, src, "CopyBackwards")


def uniform_(self, a=0.0, b=1.0, generator=None):
    """Fill with samples from U(a, b)."""
    from .random import _gen
    draw = _gen(generator).uniform(a, b, self.shape).astype(self.dtype.np)
    return _overwrite(self, Tensor._make(draw), "UniformBackward0")


def normal_(self, mean=0.0, std=1.0, generator=None):
    """Fill with samples from N(mean, std²)."""
    from .random import _gen
    draw = _gen(generator).normal(mean, std, self.shape).astype(self.dtype.np)
    return _overwrite(self, Tensor._make(draw), "NormalBackward0")


Tensor.zero_, Tensor.fill_, Tensor.copy_ = zero_, fill_, copy_
Tensor.uniform_, Tensor.normal_ = uniform_, normal_


# --- sorting, triangular parts, roll (ops/sorting.py, ops/arrange.py), multinomial -------

for _name in "sort argsort topk tril triu roll".split():
    setattr(Tensor, _name, _method(getattr(ops, _name)))
Tensor.tril_ = _inplace_method(ops.tril)
Tensor.triu_ = _inplace_method(ops.triu)


def multinomial(self, num_samples, replacement=False, *, generator=None):
    """``jitgrad.multinomial(self, ...)``: indices drawn from the rows of ``self``."""
    from .random import multinomial as _multinomial
    return _multinomial(self, num_samples, replacement, generator=generator)


Tensor.multinomial = multinomial


# --- dtype and device conversion -------------------------------------------------------

def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False):
    """Convert dtype (``to(jitgrad.float64)``, ``to(other)``); devices other than cpu raise."""
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, (str, _device)):
            device = a
        else:
            dtype = a
    _check_device(device)
    if dtype is None:
        return ops.clone(self) if copy else self
    return ops._to(self, dtype, copy)


def _cast_method(d):
    return lambda self: ops._to(self, d)


Tensor.to = to
Tensor.cpu = lambda self: self
Tensor.cuda = lambda self, device=None: _check_device("cuda") or self
Tensor.float = _cast_method(dt.float32)
Tensor.double = _cast_method(dt.float64)
Tensor.long = _cast_method(dt.int64)
Tensor.int = _cast_method(dt.int32)
Tensor.bool = _cast_method(dt.bool_)
Tensor.type = lambda self, dtype=None: (f"jitgrad.{ops._C_NAMES[self.dtype.name]}Tensor"
                                        if dtype is None else ops._to(self, dtype))
Tensor.type_as = lambda self, other: ops._to(self, other.dtype)
Tensor.new_zeros = lambda self, *size, dtype=None: _new(self, size, 0, dtype)
Tensor.new_ones = lambda self, *size, dtype=None: _new(self, size, 1, dtype)
Tensor.new_full = lambda self, size, fill_value, dtype=None: _new(self, (size,), fill_value, dtype)
Tensor.new_empty = lambda self, *size, dtype=None: _new(self, size, 0, dtype)
Tensor.new_tensor = lambda self, data, dtype=None: __import__("jitgrad").tensor(
    data, dtype=dtype or self.dtype)


def _new(self, size, fill, dtype):
    from .tensor import _shape_arg
    d = dt.to_dtype(dtype) if dtype is not None else self.dtype
    return Tensor._make(np.full(_shape_arg(size), fill, d.np))


def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Compute the gradient of this tensor w.r.t. graph leaves (a vector-Jacobian product).

    ``gradient`` is the vector ``v`` (same shape as this tensor); it may be
    omitted for a scalar, where it is 1.
    """
    if (gradient is None and inputs is None and not create_graph and self._value is None
            and self._requires_grad and run_cached_step(self, bool(retain_graph))):
        return  # a lazy training step whose Program is cached: run, no engine
    _engine_backward(self, gradient, retain_graph, create_graph, inputs=inputs)


backward.__qualname__ = "Tensor.backward"
Tensor.backward = backward
