"""Elementwise ops: unary, binary, comparisons and logic, ``where``/``clamp``, casts and
copies, with lazy mode's lanes in front of the common ones."""
import numbers
import numpy as np

from .. import dtypes as dt
from ..core.shapes import broadcast_shape as _broadcast_shape
from ..kernels.cpu import elementwise as ew
from ..lazy import recorder as _recorder
from ..runtime.backends import cpu
from ..tensor import Tensor, result_type
from .args import _C_NAMES, _as, _check_operand, _layout, _not_implemented, _promote, _wrap
from .dispatch import apply
from .registry import _broadcast_meta, _cast_meta, _compare_meta, _same_meta, defop
from ..kernels.cpu import interpreter as interp
from ..runtime.lowering import lower_binary, lower_copy, lower_unary

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NO_ATTRS = {}  # shared by the lazy lanes: nothing writes to an op's attrs


def _unary(name, code, grad_fn_name, vjp, save, keeps_int=False):
    op = defop(name, lambda x: cpu.unary(code, x), vjp, save, meta=_same_meta,
               lower=lower_unary(code))

    def fn(input):
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                            f"{type(input).__name__}")
        if input.dtype is dt.bool_ and code == ew.NEG:
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
        if not input.dtype.is_floating_point and not keeps_int:
            input = input.to(dt.get_default_dtype())
        return apply(op, [input], grad_fn_name)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Elementwise ``{name}``; its gradient is ``{grad_fn_name}``."
    _UNARY.append((name, op, grad_fn_name))
    return fn  # lazy mode's lane goes in front once the recorder is imported (see the end)


_UNARY = []
neg = _unary("neg", ew.NEG, "NegBackward0", lambda c, g: (-g,), (), keeps_int=True)
exp = _unary("exp", ew.EXP, "ExpBackward0", lambda c, g: (g * c.saved("out"),), ("out",))
log = _unary("log", ew.LOG, "LogBackward0", lambda c, g: (g / c.saved(0),), (0,))
sqrt = _unary("sqrt", ew.SQRT, "SqrtBackward0", lambda c, g: (g / (2 * c.saved("out")),),
              ("out",))
sin = _unary("sin", ew.SIN, "SinBackward0", lambda c, g: (g * cos(c.saved(0)),), (0,))
cos = _unary("cos", ew.COS, "CosBackward0", lambda c, g: (g * -sin(c.saved(0)),), (0,))
tanh = _unary("tanh", ew.TANH, "TanhBackward0",
              lambda c, g: (tanh_backward(g, c.saved("out")),), ("out",))
sigmoid = _unary("sigmoid", ew.SIGMOID, "SigmoidBackward0",
                 lambda c, g: (sigmoid_backward(g, c.saved("out")),), ("out",))
relu = _unary("relu", ew.RELU, "ReluBackward0",
              lambda c, g: (threshold_backward(g, c.saved("out")),), ("out",), keeps_int=True)
abs = _unary("abs", ew.ABS, "AbsBackward0", lambda c, g: (g * sign(c.saved(0)),), (0,),
             keeps_int=True)
sign = _unary("sign", ew.SIGN, "SignBackward0", lambda c, g: (g * 0,), (), keeps_int=True)
reciprocal = _unary("reciprocal", ew.RECIPROCAL, "ReciprocalBackward0",
                    lambda c, g: (-g * c.saved("out") ** 2,), ("out",))


rsqrt = _unary("rsqrt", ew.RSQRT, "RsqrtBackward0",
                lambda c, g: (g * -0.5 * c.saved("out") ** 3,), ("out",))


def square(input):
    """``input ** 2``."""
    return pow(input, 2)


def _binary_forward(code):
    return lambda a, b, dtype: cpu.binary(code, _as(a, dtype), _as(b, dtype), dtype)


def _maximum_vjp(c, g, loses):
    # as PyTorch: ties split the gradient, the losing side gets 0, NaN passes it to both
    x, y = c.saved(0), c.saved(1)
    shared = where(x == y, g / 2, g)
    return where(loses(x, y), 0.0, shared), where(loses(y, x), 0.0, shared)


def _pow_exponent_grad(x, y, out, g):
    x = x.to(out.dtype)  # log(base) in the op's precision, not the base's
    return g * where((x == 0) & (y >= 0), 0.0, out * log(x))


_ADD = defop("add", _binary_forward(ew.ADD), lambda c, g: (g, g), meta=_broadcast_meta,
             lower=lower_binary(ew.ADD))
_SUB = defop("sub", _binary_forward(ew.SUB), lambda c, g: (g, -g), meta=_broadcast_meta,
             lower=lower_binary(ew.SUB))
_MUL = defop("mul", _binary_forward(ew.MUL),
             lambda c, g: (g * c.saved(1) if c.needs_input_grad[0] else None,
                           g * c.saved(0) if c.needs_input_grad[1] else None), (0, 1),
             meta=_broadcast_meta, lower=lower_binary(ew.MUL))
_DIV = defop("div", _binary_forward(ew.DIV),
             lambda c, g: (g / c.saved(1),
                           -g * c.saved(0) / (c.saved(1) * c.saved(1))
                           if c.needs_input_grad[1] else None), (0, 1), meta=_broadcast_meta,
             lower=lower_binary(ew.DIV))
_POW = defop("pow", _binary_forward(ew.POW),
             lambda c, g: (where(c.saved(1) == 0, 0.0, g * c.saved(1)
                                 * pow(c.saved(0), c.saved(1) - 1))
                           if c.needs_input_grad[0] else None,
                           _pow_exponent_grad(c.saved(0), c.saved(1), c.saved("out"), g)
                           if c.needs_input_grad[1] else None), (0, 1, "out"),
             meta=_broadcast_meta, lower=lower_binary(ew.POW))
_MAXIMUM = defop("maximum", _binary_forward(ew.MAXIMUM),
                 lambda c, g: _maximum_vjp(c, g, lt), (0, 1), meta=_broadcast_meta,
                 lower=lower_binary(ew.MAXIMUM))
_MINIMUM = defop("minimum", _binary_forward(ew.MINIMUM),
                 lambda c, g: _maximum_vjp(c, g, gt), (0, 1), meta=_broadcast_meta,
                 lower=lower_binary(ew.MINIMUM))
_FLOORDIV = defop("floor_divide", _binary_forward(ew.FLOORDIV))
_DIV_FLOOR = defop("div_floor", _binary_forward(ew.FLOORDIV),
                   lambda c, g: (g * 0, g * 0), meta=_broadcast_meta,
                   lower=lower_binary(ew.FLOORDIV))
_REMAINDER = defop("remainder", _binary_forward(ew.REMAINDER),
                   lambda c, g: (g, -g * floor_divide(c.saved(0), c.saved(1))), (0, 1),
                   meta=_broadcast_meta, lower=lower_binary(ew.REMAINDER))
_FMOD = defop("fmod", _binary_forward(ew.FMOD),
              lambda c, g: (g, -g * ((c.saved(0) - c.saved("out")) / c.saved(1))), (0, 1, "out"),
              meta=_broadcast_meta, lower=lower_binary(ew.FMOD))


def _fused_backward(name, code, node_name, vjp, save, doc):
    """A one-pass activation backward ``name(grad, out)`` from the activation's output (as
    PyTorch's ``threshold_backward``, ``tanh_backward``, ``sigmoid_backward``)."""
    op = defop(name, _binary_forward(code), vjp, save, meta=_broadcast_meta,
               lower=lower_binary(code))

    def fn(grad, out):
        a, b, d = _promote(grad, out, name)
        return apply(op, [a, b], node_name, dtype=d.np)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


threshold_backward = _fused_backward(
    "threshold_backward", ew.THRESHOLD_BACKWARD, "ThresholdBackwardBackward0",
    lambda c, g: (threshold_backward(g, c.saved(1)), None), (1,),
    "``grad`` where ``out > 0`` else 0: ReLU's backward (threshold 0; a NaN ``out`` passes "
    "``grad``).")
tanh_backward = _fused_backward(
    "tanh_backward", ew.TANH_BACKWARD, "TanhBackwardBackward0",
    lambda c, g: (tanh_backward(g, c.saved(1)),
                  g * c.saved(0) * c.saved(1) * -2 if c.needs_input_grad[1] else None), (0, 1),
    "``grad * (1 - out**2)``: tanh's backward from its output ``out``.")
sigmoid_backward = _fused_backward(
    "sigmoid_backward", ew.SIGMOID_BACKWARD, "SigmoidBackwardBackward0",
    lambda c, g: (sigmoid_backward(g, c.saved(1)),
                  g * c.saved(0) * (1 - 2 * c.saved(1)) if c.needs_input_grad[1] else None),
    (0, 1), "``grad * out * (1 - out)``: sigmoid's backward from its output ``out``.")


def _binary_lane(op, name, general):
    """``general(a, b)`` with lazy mode's lane in front (see ``lazy.binary_lane``); the
    operators use it too (``jitgrad._methods``): it is the hot path of every elementwise
    expression."""
    return _recorder.binary_lane(op, name, general, _wrap)


def _add(input, other):
    a, b, d = _promote(input, other, "add")
    return apply(_ADD, [a, b], "AddBackward0", dtype=d.np)


def _sub(input, other):
    a, b, d = _promote(input, other, "sub")
    if d is dt.bool_:
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    return apply(_SUB, [a, b], "SubBackward0", dtype=d.np)


def _mul(input, other):
    a, b, d = _promote(input, other, "mul")
    return apply(_MUL, [a, b], "MulBackward0", dtype=d.np)


def _div(input, other):
    a, b, d = _promote(input, other, "div")
    if not d.is_floating_point:
        d = dt.get_default_dtype()
    return apply(_DIV, [a, b], "DivBackward0", dtype=d.np)


def add(input, other, alpha=1):
    """``input + alpha * other`` with broadcasting and type promotion."""
    if alpha != 1:
        other = other * alpha if not isinstance(other, Tensor) else mul(other, alpha)
    return _add_lane(input, other)


def sub(input, other, alpha=1):
    """``input - alpha * other``."""
    if alpha != 1:
        other = other * alpha if not isinstance(other, Tensor) else mul(other, alpha)
    return _sub_lane(input, other)


def mul(input, other):
    """``input * other``."""
    return _mul_lane(input, other)


def div(input, other, rounding_mode=None):
    """True division (ints give floats); ``rounding_mode='floor'`` floors."""
    if rounding_mode is None:
        return _div_lane(input, other)
    if rounding_mode == "floor":
        a, b, d = _promote(input, other, "div")
        return apply(_DIV_FLOOR, [a, b], "DivBackward2", dtype=d.np)
    raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or 'floor' "
                       f"but found '{rounding_mode}'")


true_divide = divide = div
multiply = mul
subtract = sub


def _check_int_division(b, d):
    if d.kind == 1 and (b._data == 0).any():
        raise RuntimeError("ZeroDivisionError")


def floor_divide(input, other):
    """Division rounded down (not differentiable)."""
    a, b, d = _promote(input, other, "floor_divide")
    _check_int_division(b, d)
    return apply(_FLOORDIV, [a, b], "FloorDivideBackward0", dtype=d.np)


def remainder(input, other):
    """Python-style modulus: the result has the divisor's sign."""
    name = "RemainderBackward1" if isinstance(other, Tensor) else "RemainderBackward0"
    a, b, d = _promote(input, other, "remainder")
    _check_int_division(b, d)
    return apply(_REMAINDER, [a, b], name, dtype=d.np)


def fmod(input, other):
    """C-style modulus: the result has the dividend's sign."""
    name = "FmodBackward1" if isinstance(other, Tensor) else "FmodBackward0"
    a, b, d = _promote(input, other, "fmod")
    return apply(_FMOD, [a, b], name, dtype=d.np)


def _lower_pow_scalar(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(interp.POW_SCALAR, lw.scalar(p.attrs["exponent"]), out, p.shape,
                   [(*lw.operand(x), None)])
    return out


_POW_SCALAR = defop(
    "pow_scalar", lambda x, exponent: cpu.pow_scalar(x, exponent),
    lambda c, g: (g * 0 if c.attrs["exponent"] == 0 else
                  g * c.attrs["exponent"] * pow(c.saved(0), c.attrs["exponent"] - 1),), (0,),
    meta=_same_meta, lower=_lower_pow_scalar)
def _lower_rpow(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    base = lw.constant(p.attrs["base"])
    lw.elementwise(interp.BINARY, ew.POW, out, p.shape, [(base, (), None), (*lw.operand(x), None)])
    return out


_RPOW = defop("rpow", lambda x, base, dtype: cpu.binary(ew.POW, np.array(base, dtype),
                                                       _as(x, dtype), dtype),
              lambda c, g: (_rpow_grad(c, g),), (0, "out"),
              meta=_cast_meta, lower=_lower_rpow)


def _rpow_grad(c, g):
    base = c.attrs["base"]
    if base == 0:  # as PyTorch: 0 ** x has gradient 0 where x >= 0
        return where(c.saved(0) >= 0, 0.0, g * c.saved("out") * float("-inf"))
    return g * c.saved("out") * float(np.log(base))


def pow(input, exponent):
    """``input ** exponent`` (either may be a number)."""
    if not isinstance(input, Tensor):
        _check_operand(input, "self")
        _check_operand(exponent, "exponent")
        d = result_type(input, exponent)
        return apply(_RPOW, [exponent], "PowBackward2", base=input, dtype=d.np)
    if isinstance(exponent, (numbers.Number, np.generic)) and not isinstance(exponent, bool):
        d = result_type(input, exponent)
        if not d.is_floating_point and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        x = input if input.dtype is d else input.to(d)
        if d.is_floating_point:
            return apply(_POW_SCALAR, [x], "PowBackward0", exponent=float(exponent))
        return apply(_POW, [x, _wrap(exponent, d)], "PowBackward0", dtype=d.np)
    a, b, d = _promote(input, exponent)
    if not d.is_floating_point and (b._data < 0).any():
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return apply(_POW, [a, b], "PowBackward1", dtype=d.np)


def maximum(input, other):
    """Elementwise maximum; NaN propagates."""
    a, b, d = _promote(input, other, "maximum")
    return apply(_MAXIMUM, [a, b], "MaximumBackward0", dtype=d.np)


def minimum(input, other):
    """Elementwise minimum; NaN propagates."""
    a, b, d = _promote(input, other, "minimum")
    return apply(_MINIMUM, [a, b], "MinimumBackward0", dtype=d.np)


def _compare(name, code):
    op = defop(name, lambda a, b, dtype: cpu.compare(code, _as(a, dtype), _as(b, dtype)),
               meta=_compare_meta, lower=lower_binary(code, interp.COMPARE))

    def fn(input, other):
        a, b, d = _promote(input, other, name)
        return apply(op, [a, b], "", dtype=d.np)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Elementwise ``{name}`` as a bool tensor."
    return fn


eq = _compare("eq", ew.EQ)
ne = _compare("ne", ew.NE)
lt = _compare("lt", ew.LT)
le = _compare("le", ew.LE)
gt = _compare("gt", ew.GT)
ge = _compare("ge", ew.GE)
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and = _compare("logical_and", ew.AND)
logical_or = _compare("logical_or", ew.OR)
logical_xor = _compare("logical_xor", ew.XOR)


def logical_not(input):
    """``input == 0`` as a bool tensor."""
    return eq(input, 0)


def _bitwise(logical, kernel_name):
    def fn(input, other):
        for x in (input, other):
            if isinstance(x, Tensor) and x.dtype is not dt.bool_:
                raise _not_implemented(kernel_name, x.dtype)
        return logical(input, other)
    return fn


bitwise_and = _bitwise(logical_and, "bitwise_and_cpu")
bitwise_or = _bitwise(logical_or, "bitwise_or_cpu")
bitwise_xor = _bitwise(logical_xor, "bitwise_xor_cpu")


def equal(input, other):
    """True when both tensors have the same shape and values."""
    return input.shape == other.shape and bool(eq(input, other).all())


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """``|input - other| <= atol + rtol * |other|`` everywhere."""
    return bool(np.allclose(input._data, other._data, rtol, atol, equal_nan))


def isnan(input):
    return ne(input, input)


def isfinite(input):
    return eq(input * 0, 0) if input.dtype.is_floating_point else ones_like_bool(input)


def ones_like_bool(input):
    return Tensor._make(np.ones(input.shape, np.bool_))


def _lower_where(lw, p):
    a, b = p.inputs
    out = lw.new_out(p)
    cond = p.attrs["cond"]
    lw.elementwise(interp.WHERE, 0, out, p.shape, [(*lw.operand(cond), None),
                                                   (*lw.operand(a), None), (*lw.operand(b), None)])
    return out


_WHERE = defop("where", lambda a, b, cond, dtype: cpu.where(cond._data, _as(a, dtype), _as(b, dtype)),
               lambda c, g: (where(c.attrs["cond"], g, 0.0) if c.needs_input_grad[0] else None,
                             where(c.attrs["cond"], 0.0, g) if c.needs_input_grad[1] else None),
               meta=lambda metas, cond, dtype: [(_broadcast_shape(
                   cond.shape, metas[0][0], metas[1][0]), dtype)], lower=_lower_where)


def where(condition, input, other):
    """``input`` where ``condition`` holds, else ``other`` (numbers allowed for either)."""
    if not isinstance(condition, Tensor):
        raise TypeError("where(): argument 'condition' must be Tensor")
    if condition.dtype is not dt.bool_:
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {_C_NAMES[condition.dtype.name]}")
    a, b, d = _promote(input, other)
    _broadcast_shape(condition.shape, a.shape, b.shape)
    return apply(_WHERE, [a, b], "WhereBackward0", cond=condition, dtype=d.np)


def masked_fill(input, mask, value):
    """``input`` with ``value`` written where ``mask`` is True."""
    if mask.dtype is not dt.bool_:
        raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{ {'int64': 'long int', 'int32': 'int'}.get(mask.dtype.name, mask.dtype.name)}")
    if isinstance(value, Tensor):
        value = value.item()
    d = input.dtype
    _broadcast_shape(mask.shape, input.shape)
    if mask.shape != input.shape and _broadcast_shape(mask.shape, input.shape) != input.shape:
        raise RuntimeError(f"masked_fill: mask of shape {list(mask.shape)} does not broadcast "
                           f"to input of shape {list(input.shape)}")
    return apply(_WHERE, [_wrap(value, d), input], "MaskedFillBackward0", cond=mask, dtype=d.np)


def _clamp_tensor_forward(x, lo, hi, dtype):
    x, lo, hi = _as(x, dtype), _as(lo, dtype), _as(hi, dtype)
    return cpu.binary(ew.MINIMUM, cpu.binary(ew.MAXIMUM, x, lo, dtype), hi, dtype)


def _clamp_tensor_vjp(c, g):
    # as PyTorch: x gets the gradient where lo <= x <= hi (ties included), a bound where
    # it was the value taken
    x, lo, hi = c.saved(0), c.saved(1), c.saved(2)
    return (where((x >= lo) & (x <= hi), g, 0.0),
            where(x < lo, g, 0.0) if c.needs_input_grad[1] else None,
            where((x > hi) & (lo <= hi), g, 0.0) if c.needs_input_grad[2] else None)


def _lower_clamp(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    k = lw.scalar(p.attrs["lo"])
    lw.scalar(p.attrs["hi"])
    lw.elementwise(interp.CLAMP, k, out, p.shape, [(*lw.operand(x), None)])
    return out


_CLAMP_T = defop("clamp_tensor", _clamp_tensor_forward, _clamp_tensor_vjp, (0, 1, 2),
                 meta=lambda m, dtype: [(_broadcast_shape(m[0][0], m[1][0], m[2][0]), dtype)])
_CLAMP = defop("clamp", lambda x, lo, hi: cpu.clamp(x, lo, hi),
               lambda c, g: (where((c.saved(0) >= c.attrs["lo"]) & (c.saved(0) <= c.attrs["hi"]),
                                   g, 0.0),), (0,), meta=_same_meta, lower=_lower_clamp)


def clamp(input, min=None, max=None):
    """Limit values to ``[min, max]``; either bound may be ``None``."""
    if min is None and max is None:
        raise RuntimeError("jitgrad.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        d = result_type(input, *(v for v in (min, max) if v is not None))
        inf = np.inf if d.is_floating_point else np.iinfo(d.np).max
        lo = min if isinstance(min, Tensor) else _wrap(-inf if min is None else min, d)
        hi = max if isinstance(max, Tensor) else _wrap(inf if max is None else max, d)
        _broadcast_shape(input.shape, lo.shape, hi.shape)
        return apply(_CLAMP_T, [input, lo, hi], "ClampBackward0", dtype=d.np)
    d = result_type(input, *(v for v in (min, max) if v is not None))
    x = input if input.dtype is d else input.to(d)
    inf = np.inf if d.is_floating_point else np.iinfo(d.np).max
    lo = -inf if min is None else min
    hi = inf if max is None else max
    return apply(_CLAMP, [x], "ClampBackward1", lo=lo, hi=hi)


clip = clamp


def clamp_min(input, min):
    return clamp(input, min=min)


def clamp_max(input, max):
    return clamp(input, max=max)


def _lower_overwrite(lw, p):
    out = lw.new_out(p)
    lw.elementwise(interp.COPY, 0, out, p.shape, [(*lw.operand(p.inputs[1]), None)])
    return out


OVERWRITE = defop(
    "overwrite", lambda old, src: cpu.cast(src, old.dtype, old.shape),
    lambda c, g: (g * 0 if c.needs_input_grad[0] else None, g if c.needs_input_grad[1] else None),
    meta=lambda metas: [metas[0]], lower=_lower_overwrite)
_CAST = defop("to_copy", lambda x, dtype: cpu.cast(x, dtype), lambda c, g: (g,), meta=_cast_meta,
              lower=lower_copy)
_CLONE = defop("clone", lambda x: cpu.cast(x, x.dtype), lambda c, g: (g,), meta=_same_meta,
               lower=lower_copy)


def _to(input, dtype, copy=False):
    d = dt.to_dtype(dtype)
    if d is input.dtype and not copy:
        return input
    return apply(_CAST, [input], "ToCopyBackward0", dtype=d.np)


def clone(input, memory_format=None):
    """A copy with its own storage; gradients flow back to ``input``."""
    return apply(_CLONE, [input], "CloneBackward0")


def contiguous(input, memory_format=None):
    """``input`` itself when C-contiguous, else a contiguous copy."""
    return input if _layout(input).flags.c_contiguous else clone(input)


_add_lane = _binary_lane(_ADD, "AddBackward0", _add)  # (they read the recorder when made)
_sub_lane = _binary_lane(_SUB, "SubBackward0", _sub)
_mul_lane = _binary_lane(_MUL, "MulBackward0", _mul)
_div_lane = _binary_lane(_DIV, "DivBackward0", _div)
for _name, _op, _grad_fn_name in _UNARY:  # (nothing has taken these functions yet)
    globals()[_name] = _recorder.unary_lane(_op, _grad_fn_name, globals()[_name])
del _name, _op, _grad_fn_name
