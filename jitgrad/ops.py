"""The op registry: every primitive declared once, with its forward and its VJP.

An ``Op`` pairs a forward over numpy arrays (computed by the kernels through
``_launch``) with a vector-Jacobian rule written in jitgrad's own ops, so a
backward pass is an ordinary graph and higher-order gradients come free.
Broadcasting is undone in one place (``Op.backward`` sums each input's
gradient down to the input's shape) and so is dtype promotion (gradients are
cast back to each input's dtype). The public functions below check their
arguments with PyTorch's error messages before anything runs.
"""
import builtins
import collections
import math
import numbers
import warnings
import weakref

import numpy as np

from . import dtypes as dt
from .autograd.grad_mode import is_grad_enabled, no_grad
from .autograd.graph import node_class
from .kernels.cpu import elementwise as ew
from .kernels.cpu import reduce as rd
from .core.shapes import as_view_key as _as_view_key, fake_array, flat_positions as _flat_positions
from .runtime.backends import cpu as L
from .tensor import Tensor, _dim

REGISTRY = {}


class Op:
    """A primitive: ``forward(*arrays, **attrs)``, ``vjp(node, grad)`` and ``meta``.

    ``meta(input_metas, **attrs)`` gives each output's (shape, numpy dtype) from
    the inputs' (shape, dtype) without computing (lazy mode records with it);
    view ops get theirs by running ``forward`` on arrays that own no memory.
    ``save`` names what the VJP reads back: input positions and/or ``"out"``.
    ``view`` marks ops whose output may share the input's storage; ``multi``
    ops return a tuple.
    """

    __slots__ = ("name", "forward", "vjp", "save", "view", "meta", "multi", "nodes")

    def __init__(self, name, forward, vjp=None, save=(), view=False, meta=None, multi=False,
                 nodes=None):
        self.name, self.forward, self.vjp, self.save, self.view = name, forward, vjp, save, view
        self.meta = meta if meta is not None or not view else _view_meta(forward)
        self.multi = multi
        # lazy mode only: for an op that fuses others, ``nodes(pending, saved_out)`` makes
        # the grad_fns the unfused ops would have made (``saved_out(node)`` saves the
        # output for the last) and returns them, the output's grad_fn last
        self.nodes = nodes

    def __repr__(self):
        return f"<op {self.name}>"

    def backward(self, node, grads):
        g = grads if self.multi else grads[0]
        result = self.vjp(node, g)
        out = []
        for r, (shape, dtype), (fn, _) in zip(result, node._inputs_meta, node.next_functions):
            if r is None or fn is None:
                out.append(None)
                continue
            if r._shape != shape:
                r = sum_to_size(r, shape)
            if r._npdtype != dtype:
                r = r.to(dt._FROM_NP[dtype])
            out.append(r)
        return out


def defop(name, forward, vjp=None, save=(), view=False, meta=None, multi=False, nodes=None):
    """Declare a primitive and add it to ``REGISTRY``."""
    op = REGISTRY[name] = Op(name, forward, vjp, save, view, meta, multi, nodes)
    return op


def _view_meta(forward):
    def meta(metas, **attrs):
        out = forward(fake_array(*metas[0]), **attrs)
        return [(v.shape, v.dtype) for v in (out if isinstance(out, tuple) else (out,))]
    return meta


def _same_meta(metas, **attrs):
    return [metas[0]]


def _cast_meta(metas, dtype, **attrs):
    return [(metas[0][0], dtype)]


def _broadcast_meta(metas, dtype, **attrs):
    return [(_broadcast_shape(metas[0][0], metas[1][0]), dtype)]


def _compare_meta(metas, dtype, **attrs):
    return [(_broadcast_shape(*[m[0] for m in metas]), np.dtype(np.bool_))]


def _reduce_meta(metas, dims, keepdim, dtype=None, **attrs):
    shape = metas[0][0]
    out = _keep_shape(shape, dims) if keepdim else tuple(
        n for i, n in enumerate(shape) if i not in dims)
    return [(out, metas[0][1] if dtype is None else dtype)]


def apply(op, inputs, grad_fn_name, **attrs):
    """Run ``op`` on tensors ``inputs`` (or record it, in lazy mode) and record it for
    autograd when needed."""
    if _lazy._STATE["lazy"]:
        outs = _lazy.record(op, inputs, attrs, grad_fn_name, None if attrs else ())
        if outs is not None:
            return outs
        _lazy._stats["eager_fallbacks"] += 1
        if _lazy._tls.capture is not None:
            _lazy._tls.capture.fail(f"{op.name} ran eagerly")
    datas = op.forward(*[t._data for t in inputs], **attrs)
    outs = [Tensor._make(d) for d in (datas if op.multi else (datas,))]
    return finish(op, inputs, outs, grad_fn_name, attrs)


def finish(op, inputs, outs, grad_fn_name, attrs):
    """Link view outputs to their base and give the outputs a ``grad_fn`` when autograd
    records ``op``; returns the output (a tuple for multi-output ops)."""
    multi = op.multi
    if op.view:
        _link_views(op, inputs[0], outs, grad_fn_name, attrs, multi)
    if (op.vjp is not None and grad_fn_name is not None and is_grad_enabled()
            and outs[0]._npdtype.kind == "f" and builtins.any(t._requires_grad for t in inputs)):
        node = node_class(grad_fn_name)(op, attrs, inputs, len(outs))
        for i, o in enumerate(outs):
            o._requires_grad, o._grad_fn, o._output_nr = True, node, i
        for key in op.save:
            if key == "out":
                node.save(key, outs[0], 0)
            else:
                node.save(key, inputs[key])
    return tuple(outs) if multi else outs[0]


def _link_views(op, src, outs, name, attrs, multi):
    """Outputs that alias ``src``'s storage share its version counter and remember how
    to remake themselves from its base, so an in-place change can be replayed."""
    base = src._base if src._view_fn is not None else src
    prev = src._view_fn
    for i, o in enumerate(outs):
        if o._value is None:
            if not o._lazy.shares:  # a pending view: does it alias its input once realized?
                continue
        elif src._value is None or not np.may_share_memory(o._value, src._value):
            continue
        o._vc = src._vc

        def remake(t, i=i):
            t = t if prev is None else prev(t)
            r = apply(op, [t], name, **attrs)
            return r[i] if multi else r
        o._base, o._view_fn = base, remake
        if base._requires_grad or o._requires_grad or is_grad_enabled():
            views = base.__dict__.setdefault("_views", [])
            n = len(views)
            if n >= 32 and not n & (n - 1):  # at each power of two, drop the views that died
                views[:] = [r for r in views if r() is not None]  # (a weight viewed each step)
            views.append(weakref.ref(o))


# --- argument helpers ------------------------------------------------------------

_WRAPPED = {}


def _wrap(x, d):
    """A Python number as a 0-d tensor of dtype ``d`` (it never requires grad).

    Equal numbers share one tensor, so a graph that uses ``0.5`` many times reads
    one input (lazy Programs bind fewer inputs); nothing writes to these tensors.
    """
    if type(x) is float and x:  # a nonzero float: value and dtype say which tensor
        t = _WRAPPED_FLOATS.get((x, d))
        if t is not None:
            return t
    key = (type(x), x, d, isinstance(x, float) and math.copysign(1.0, x) < 0)  # -0.0 != 0.0
    t = _WRAPPED.get(key)
    if t is None:
        if len(_WRAPPED) > 4096:
            _WRAPPED.clear()
            _WRAPPED_FLOATS.clear()
        t = Tensor._make(np.array(x, dtype=d.np))
        t._value.flags.writeable = False
        _WRAPPED[key] = t
        if type(x) is float and x:
            _WRAPPED_FLOATS[(x, d)] = t
    return t


_WRAPPED_FLOATS = {}


def _check_operand(x, what="other", fn=None, position=None):
    if not isinstance(x, (Tensor, numbers.Number, np.generic)):
        if fn is None:
            raise TypeError(f"{what} must be a Tensor or a number, not {type(x).__name__}")
        raise TypeError(f"{fn}(): argument '{what}' (position {position}) must be Tensor, not "
                        f"{type(x).__name__}")


def _check_tensor(x, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")


def _broadcast_shape(*shapes):
    if len(shapes) == 2:  # the common cases first: equal shapes, or a scalar operand
        a, b = shapes
        if a == b or not b:
            return tuple(a)
        if not a:
            return tuple(b)
    else:
        first = shapes[0]
        if builtins.all(s == first for s in shapes):
            return tuple(first)
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for i in range(-1, -ndim - 1, -1):  # from the right, as PyTorch reports mismatches
        size = 1
        for k, s in enumerate(shapes):
            n = s[i] if -i <= len(s) else 1
            if n != 1:
                if size != 1 and n != size:
                    raise RuntimeError(
                        f"The size of tensor a ({size}) must match the size of tensor b ({n}) "
                        f"at non-singleton dimension {i + ndim}")
                size = n
        out.append(size)
    return tuple(reversed(out))


def _as(a, d):
    return a if a.dtype == d else L.cast(a, d)


def _promote(a, b, name=None):
    """Both operands as tensors of their common dtype, plus that dtype (``name``: the op, for
    PyTorch's argument errors)."""
    if type(a) is Tensor:  # the common cases, decided without the general rules
        da = a._npdtype
        if type(b) is Tensor:
            if da == b._npdtype and a._shape == b._shape:
                return a, b, dt._FROM_NP[da]
        elif type(b) is float and da.kind == "f" or type(b) is int and da.kind in "fi":
            d = dt._FROM_NP[da]
            return a, _wrap(b, d), d
    _check_operand(a, "input", name, 1)
    _check_operand(b, "other", name, 2)
    d = dt.result_type(a, b)
    a = a if isinstance(a, Tensor) else _wrap(a, d)
    b = b if isinstance(b, Tensor) else _wrap(b, d)
    _broadcast_shape(a.shape, b.shape)
    return a, b, d


def _dims(dim, ndim):
    """Sorted, normalised reduction dims; ``None`` means all."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        dims = sorted(_dim(d, ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"dim {dims[0]} appears multiple times in the list of dims")
        return tuple(dims) if dims or ndim == 0 else tuple(range(ndim))
    return (_dim(dim, ndim),) if ndim else ()


def _keep_shape(shape, dims):
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _float_dtype(x):
    return x.dtype if x.dtype.is_floating_point else dt.get_default_dtype()


_C_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
            "bool": "Bool"}


def _not_implemented(kernel, d):
    return NotImplementedError(f"\"{kernel}\" not implemented for '{_C_NAMES[d.name]}'")


# --- elementwise: unary ---------------------------------------------------------

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NO_ATTRS = {}  # shared by the lazy lanes: nothing writes to an op's attrs


def _unary(name, code, grad_fn_name, vjp, save, keeps_int=False):
    op = defop(name, lambda x: L.unary(code, x), vjp, save, meta=_same_meta)

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


# --- elementwise: binary --------------------------------------------------------

def _binary_forward(code):
    return lambda a, b, dtype: L.binary(code, _as(a, dtype), _as(b, dtype), dtype)


def _maximum_vjp(c, g, loses):
    # as PyTorch: ties split the gradient, the losing side gets 0, NaN passes it to both
    x, y = c.saved(0), c.saved(1)
    shared = where(x == y, g / 2, g)
    return where(loses(x, y), 0.0, shared), where(loses(y, x), 0.0, shared)


def _pow_exponent_grad(x, y, out, g):
    x = x.to(out.dtype)  # log(base) in the op's precision, not the base's
    return g * where((x == 0) & (y >= 0), 0.0, out * log(x))


_ADD = defop("add", _binary_forward(ew.ADD), lambda c, g: (g, g), meta=_broadcast_meta)
_SUB = defop("sub", _binary_forward(ew.SUB), lambda c, g: (g, -g), meta=_broadcast_meta)
_MUL = defop("mul", _binary_forward(ew.MUL),
             lambda c, g: (g * c.saved(1) if c.needs_input_grad[0] else None,
                           g * c.saved(0) if c.needs_input_grad[1] else None), (0, 1),
             meta=_broadcast_meta)
_DIV = defop("div", _binary_forward(ew.DIV),
             lambda c, g: (g / c.saved(1),
                           -g * c.saved(0) / (c.saved(1) * c.saved(1))
                           if c.needs_input_grad[1] else None), (0, 1), meta=_broadcast_meta)
_POW = defop("pow", _binary_forward(ew.POW),
             lambda c, g: (where(c.saved(1) == 0, 0.0, g * c.saved(1)
                                 * pow(c.saved(0), c.saved(1) - 1))
                           if c.needs_input_grad[0] else None,
                           _pow_exponent_grad(c.saved(0), c.saved(1), c.saved("out"), g)
                           if c.needs_input_grad[1] else None), (0, 1, "out"),
             meta=_broadcast_meta)
_MAXIMUM = defop("maximum", _binary_forward(ew.MAXIMUM),
                 lambda c, g: _maximum_vjp(c, g, lt), (0, 1), meta=_broadcast_meta)
_MINIMUM = defop("minimum", _binary_forward(ew.MINIMUM),
                 lambda c, g: _maximum_vjp(c, g, gt), (0, 1), meta=_broadcast_meta)
_FLOORDIV = defop("floor_divide", _binary_forward(ew.FLOORDIV))
_DIV_FLOOR = defop("div_floor", _binary_forward(ew.FLOORDIV),
                   lambda c, g: (g * 0, g * 0), meta=_broadcast_meta)
_REMAINDER = defop("remainder", _binary_forward(ew.REMAINDER),
                   lambda c, g: (g, -g * floor_divide(c.saved(0), c.saved(1))), (0, 1),
                   meta=_broadcast_meta)
_FMOD = defop("fmod", _binary_forward(ew.FMOD),
              lambda c, g: (g, -g * ((c.saved(0) - c.saved("out")) / c.saved(1))), (0, 1, "out"),
              meta=_broadcast_meta)


def _fused_backward(name, code, node_name, vjp, save, doc):
    """A one-pass activation backward ``name(grad, out)`` from the activation's output (as
    PyTorch's ``threshold_backward``, ``tanh_backward``, ``sigmoid_backward``)."""
    op = defop(name, _binary_forward(code), vjp, save, meta=_broadcast_meta)

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


_POW_SCALAR = defop(
    "pow_scalar", lambda x, exponent: L.pow_scalar(x, exponent),
    lambda c, g: (g * 0 if c.attrs["exponent"] == 0 else
                  g * c.attrs["exponent"] * pow(c.saved(0), c.attrs["exponent"] - 1),), (0,),
    meta=_same_meta)
_RPOW = defop("rpow", lambda x, base, dtype: L.binary(ew.POW, np.array(base, dtype),
                                                       _as(x, dtype), dtype),
              lambda c, g: (_rpow_grad(c, g),), (0, "out"),
              meta=_cast_meta)


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
        d = dt.result_type(input, exponent)
        return apply(_RPOW, [exponent], "PowBackward2", base=input, dtype=d.np)
    if isinstance(exponent, (numbers.Number, np.generic)) and not isinstance(exponent, bool):
        d = dt.result_type(input, exponent)
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


# --- comparisons and logic (bool results, not differentiable) ----------------------

def _compare(name, code):
    op = defop(name, lambda a, b, dtype: L.compare(code, _as(a, dtype), _as(b, dtype)),
               meta=_compare_meta)

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


# --- where, clamp ---------------------------------------------------------------

_WHERE = defop("where", lambda a, b, cond, dtype: L.where(cond._data, _as(a, dtype), _as(b, dtype)),
               lambda c, g: (where(c.attrs["cond"], g, 0.0) if c.needs_input_grad[0] else None,
                             where(c.attrs["cond"], 0.0, g) if c.needs_input_grad[1] else None),
               meta=lambda metas, cond, dtype: [(_broadcast_shape(
                   cond.shape, metas[0][0], metas[1][0]), dtype)])


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
    return L.binary(ew.MINIMUM, L.binary(ew.MAXIMUM, x, lo, dtype), hi, dtype)


def _clamp_tensor_vjp(c, g):
    # as PyTorch: x gets the gradient where lo <= x <= hi (ties included), a bound where
    # it was the value taken
    x, lo, hi = c.saved(0), c.saved(1), c.saved(2)
    return (where((x >= lo) & (x <= hi), g, 0.0),
            where(x < lo, g, 0.0) if c.needs_input_grad[1] else None,
            where((x > hi) & (lo <= hi), g, 0.0) if c.needs_input_grad[2] else None)


_CLAMP_T = defop("clamp_tensor", _clamp_tensor_forward, _clamp_tensor_vjp, (0, 1, 2),
                 meta=lambda m, dtype: [(_broadcast_shape(m[0][0], m[1][0], m[2][0]), dtype)])
_CLAMP = defop("clamp", lambda x, lo, hi: L.clamp(x, lo, hi),
               lambda c, g: (where((c.saved(0) >= c.attrs["lo"]) & (c.saved(0) <= c.attrs["hi"]),
                                   g, 0.0),), (0,), meta=_same_meta)


def clamp(input, min=None, max=None):
    """Limit values to ``[min, max]``; either bound may be ``None``."""
    if min is None and max is None:
        raise RuntimeError("jitgrad.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        d = dt.result_type(input, *(v for v in (min, max) if v is not None))
        inf = np.inf if d.is_floating_point else np.iinfo(d.np).max
        lo = min if isinstance(min, Tensor) else _wrap(-inf if min is None else min, d)
        hi = max if isinstance(max, Tensor) else _wrap(inf if max is None else max, d)
        _broadcast_shape(input.shape, lo.shape, hi.shape)
        return apply(_CLAMP_T, [input, lo, hi], "ClampBackward0", dtype=d.np)
    d = dt.result_type(input, *(v for v in (min, max) if v is not None))
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


# --- dtype casts and copies --------------------------------------------------------

OVERWRITE = defop(
    "overwrite", lambda old, src: L.cast(src, old.dtype, old.shape),
    lambda c, g: (g * 0 if c.needs_input_grad[0] else None, g if c.needs_input_grad[1] else None),
    meta=lambda metas: [metas[0]])
_CAST = defop("to_copy", lambda x, dtype: L.cast(x, dtype), lambda c, g: (g,), meta=_cast_meta)
_CLONE = defop("clone", lambda x: L.cast(x, x.dtype), lambda c, g: (g,), meta=_same_meta)


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


# --- reductions ------------------------------------------------------------------

def _expand_grad(g, c):
    """Broadcast a reduction's output gradient back over the reduced dims."""
    shape, dims, keepdim = c._inputs_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    if not keepdim:
        g = reshape(g, _keep_shape(shape, dims))
    return expand(g, shape)


def _reduce_forward(code):
    def forward(x, dims, keepdim, dtype):
        out = L.reduce(code, x, dims, dtype)
        return out.reshape(_keep_shape(x.shape, dims)) if keepdim else out
    return forward


def _count_of(shape, dims):
    """The number of elements reduced (0 gives NaN means, as in PyTorch)."""
    n = int(np.prod([shape[d] for d in dims]))
    return float(n) if n else float("nan")


def _count(c):
    shape, dims = c._inputs_meta[0][0], c.attrs["dims"]
    return int(np.prod([shape[d] for d in dims]))


def _amax_vjp(c, g):
    x, out = c.saved(0), c.saved("out")
    if not c.attrs["keepdim"]:
        out = reshape(out, _keep_shape(x.shape, c.attrs["dims"]))
    mask = eq(x, out).to(x.dtype)
    return (_expand_grad(g, c) * mask / sum(mask, c.attrs["dims"], keepdim=True),)


def _prod_vjp(c, g):
    """d prod / d x_i is the product of the other elements, built without dividing by x
    (exact with zeros, and differentiable again): move the reduced dims last, lay each
    slice out n times with the diagonal set to 1, and multiply along it."""
    x, dims = c.saved(0), c.attrs["dims"]
    kept = [d for d in range(x.ndim) if d not in dims]
    moved = permute(x, kept + list(dims)) if x.ndim else x
    lead = tuple(x.shape[d] for d in kept)
    n = int(np.prod([x.shape[d] for d in dims]))
    rows = reshape(moved, lead + (1, n))
    eye_ = Tensor._make(np.eye(n, dtype=np.bool_))
    others = _reduction(_PROD, where(eye_, 1.0, expand(rows, lead + (n, n))), [len(lead) + 1],
                        False, x.dtype, ("ProdBackward1",) * 2)
    shape_moved = lead + tuple(x.shape[d] for d in dims)
    others = reshape(others, shape_moved)
    if x.ndim:
        others = permute(others, tuple(np.argsort(kept + list(dims))))
    return (_expand_grad(g, c) * others,)


_SUM = defop("sum", _reduce_forward(rd.SUM), lambda c, g: (_expand_grad(g, c),),
             meta=_reduce_meta)
def _mean_forward(x, dims, keepdim, dtype):
    with np.errstate(invalid="ignore"):  # an empty mean is NaN, quietly, as in PyTorch
        return _reduce_forward(rd.SUM)(x, dims, keepdim, dtype) / _count_of(x.shape, dims)


_MEAN = defop("mean", _mean_forward,
    lambda c, g: (_expand_grad(g, c) / _count(c),), meta=_reduce_meta)
_PROD = defop("prod", _reduce_forward(rd.PROD), _prod_vjp, (0,), meta=_reduce_meta)
_AMAX = defop("amax", _reduce_forward(rd.MAX), _amax_vjp, (0, "out"), meta=_reduce_meta)
_AMIN = defop("amin", _reduce_forward(rd.MIN), _amax_vjp, (0, "out"), meta=_reduce_meta)


def _reduction(op, input, dim, keepdim, dtype, names):
    dims = _dims(dim, input.ndim)
    return apply(op, [input], names[0] if dim is None else names[1],
                 dims=dims, keepdim=keepdim, dtype=dtype.np)


_ALL_DIMS = [tuple(range(n)) for n in range(65)]


def _reduce_all(op, input, name):
    """Lazy mode's lane for ``input.sum()`` / ``input.mean()`` of a float tensor: the op as
    the general path would record it, or None."""
    if _lazy._STATE["lazy"] and isinstance(input, Tensor):
        d = input._npdtype
        if d is _F32 or d is _F64:
            lanes = _REDUCE_ALL[d is _F64]
            lane = lanes.get(len(input._shape))
            if lane is None:  # the attributes and their key (the dtype by name: a numpy
                # dtype's hash costs 50 ns), made once: nothing writes them
                attrs = {"dims": _ALL_DIMS[len(input._shape)], "keepdim": False, "dtype": d}
                lane = lanes[len(input._shape)] = (
                    attrs, tuple((k, v.str if k == "dtype" else v) for k, v in attrs.items()))
            return _lazy.record(op, [input], lane[0], name, lane[1])
    return None


_REDUCE_ALL = ({}, {})  # float32's and float64's lanes by rank


def sum(input, dim=None, keepdim=False, dtype=None):
    """Sum over ``dim`` (all dims when ``None``); ints and bools sum to int64."""
    if dim is None and dtype is None and not keepdim:
        out = _reduce_all(_SUM, input, "SumBackward0")
        if out is not None:
            return out
    _check_tensor(input, "sum")
    d = dt.to_dtype(dtype) if dtype is not None else (
        input.dtype if input.dtype.is_floating_point else dt.int64)
    return _reduction(_SUM, input, dim, keepdim, d, ("SumBackward0", "SumBackward1"))


def mean(input, dim=None, keepdim=False, dtype=None):
    """Mean over ``dim`` (all dims when ``None``); floating inputs only."""
    if dim is None and dtype is None and not keepdim:
        out = _reduce_all(_MEAN, input, "MeanBackward0")
        if out is not None:
            return out
    _check_tensor(input, "mean")
    d = dt.to_dtype(dtype) if dtype is not None else input.dtype
    if not d.is_floating_point:
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_C_NAMES[d.name]}")
    x = input if input.dtype is d else input.to(d)
    return _reduction(_MEAN, x, dim, keepdim, d, ("MeanBackward0", "MeanBackward1"))


def prod(input, dim=None, keepdim=False, dtype=None):
    """Product over ``dim`` (all dims when ``None``)."""
    _check_tensor(input, "prod")
    d = dt.to_dtype(dtype) if dtype is not None else (
        input.dtype if input.dtype.is_floating_point else dt.int64)
    if dim is not None and not isinstance(dim, int):
        raise TypeError("prod(): argument 'dim' must be int")
    return _reduction(_PROD, input, dim, keepdim, d, ("ProdBackward0", "ProdBackward1"))


def _check_nonempty(input, name, dims):
    if input.numel() == 0 and (dims is None or builtins.any(input.shape[d] == 0 for d in dims)):
        raise (IndexError if name.startswith("arg") else RuntimeError)(
            f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
            + ("" if name.startswith("arg") else
               " Specify the reduction dim with the 'dim' argument."))


def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim``; the gradient is shared evenly among ties."""
    dims = _dims(dim if dim != () else None, input.ndim)
    _check_nonempty(input, "amax", dims)
    return apply(_AMAX, [input], "AmaxBackward0", dims=dims, keepdim=keepdim,
                 dtype=input.dtype.np)


def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim``; the gradient is shared evenly among ties."""
    dims = _dims(dim if dim != () else None, input.ndim)
    _check_nonempty(input, "amin", dims)
    return apply(_AMIN, [input], "AminBackward0", dims=dims, keepdim=keepdim,
                 dtype=input.dtype.np)


_ARGMAX = defop("argmax", lambda x, dim, keepdim, code: _arg_forward(x, dim, keepdim, code))


def _arg_forward(x, dim, keepdim, code):
    out = L.arg_reduce(code, x, dim)
    if keepdim:
        out = out.reshape((1,) * x.ndim if dim is None else _keep_shape(x.shape, [dim]))
    return out


def argmax(input, dim=None, keepdim=False):
    """Index of the maximum (over the flattened tensor when ``dim`` is None)."""
    dim = None if dim is None else _dim(dim, input.ndim)
    _check_nonempty(input, "argmax", None if dim is None else [dim])
    if input.ndim == 0:
        return Tensor._make(np.array(0, np.int64))
    return apply(_ARGMAX, [input], "", dim=dim, keepdim=keepdim, code=rd.ARGMAX)


def argmin(input, dim=None, keepdim=False):
    """Index of the minimum (over the flattened tensor when ``dim`` is None)."""
    dim = None if dim is None else _dim(dim, input.ndim)
    _check_nonempty(input, "argmin", None if dim is None else [dim])
    if input.ndim == 0:
        return Tensor._make(np.array(0, np.int64))
    return apply(_ARGMAX, [input], "", dim=dim, keepdim=keepdim, code=rd.ARGMIN)


class _ReturnType(collections.namedtuple("return_type", ["values", "indices"])):
    """``(values, indices)`` printed as ``jitgrad.return_types.max(...)``, as PyTorch does."""

    __slots__ = ()
    _name = "max"

    def __repr__(self):
        return (f"jitgrad.return_types.{self._name}(\nvalues={self.values!r},\n"
                f"indices={self.indices!r})")


class _Max(_ReturnType):
    __slots__ = ()


class _Min(_ReturnType):
    __slots__ = ()
    _name = "min"


def _MaxMin(values, indices, code=None):
    return (_Min if code == rd.ARGMIN else _Max)(values, indices)

_SELECT_MAX = defop(
    "max_dim", lambda x, dim, keepdim, code: _select_forward(x, dim, keepdim, code),
    lambda c, g: (_one_hot_grad(c, g),))


def _select_forward(x, dim, keepdim, code):
    idx = L.arg_reduce(code, x, dim)
    vals = np.take_along_axis(x, np.expand_dims(idx, dim), dim)
    return vals if keepdim else vals.reshape(idx.shape)


def _one_hot_grad(c, g):
    shape, dim = c._inputs_meta[0][0], c.attrs["dim"]
    idx = c.metadata["indices"]
    if not c.attrs["keepdim"]:
        g, idx = unsqueeze(g, dim), unsqueeze(idx, dim)
    pos = arange(shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(shape))])
    return where(eq(pos, idx), expand(g, shape), 0.0)


def _max_min(input, dim, keepdim, other, code, name):
    if isinstance(dim, Tensor):
        return (maximum if code == rd.ARGMAX else minimum)(input, dim)
    if dim is None:
        _check_nonempty(input, name, None)
        return apply(_AMAX if code == rd.ARGMAX else _AMIN, [input],
                     "MaxBackward1" if code == rd.ARGMAX else "MinBackward1",
                     dims=list(range(input.ndim)), keepdim=False, dtype=input.dtype.np)
    dim = _dim(dim, input.ndim)
    _check_nonempty(input, name, [dim])
    if input.ndim == 0:
        return _MaxMin(input.clone(), Tensor._make(np.array(0, np.int64)), code)
    values = apply(_SELECT_MAX, [input], "MaxBackward0" if code == rd.ARGMAX else "MinBackward0",
                   dim=dim, keepdim=keepdim, code=code)
    indices = Tensor._make(L.arg_reduce(code, input._data, dim))
    if keepdim:
        indices = Tensor._make(np.expand_dims(indices._data, dim))
    if values.grad_fn is not None:
        values.grad_fn.metadata["indices"] = indices
    return _MaxMin(values, indices, code)


def max(input, dim=None, keepdim=False):
    """The maximum value, or with ``dim`` a ``(values, indices)`` pair; ``max(a, b)`` is ``maximum``."""
    return _max_min(input, dim, keepdim, None, rd.ARGMAX, "max")


def min(input, dim=None, keepdim=False):
    """The minimum value, or with ``dim`` a ``(values, indices)`` pair; ``min(a, b)`` is ``minimum``."""
    return _max_min(input, dim, keepdim, None, rd.ARGMIN, "min")


def all(input, dim=None, keepdim=False):
    """True where every element (along ``dim``) is nonzero."""
    return eq(amin(ne(input, 0).to(dt.int64), () if dim is None else dim, keepdim), 1)


def any(input, dim=None, keepdim=False):
    """True where some element (along ``dim``) is nonzero."""
    return eq(amax(ne(input, 0).to(dt.int64), () if dim is None else dim, keepdim), 1)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _check_float_var(input):
    if not input.dtype.is_floating_point:
        raise RuntimeError("std and var only support floating point and complex dtypes")


def _warn_dof(name, n, correction):
    if n - correction <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's correction by default."""
    _check_float_var(input)
    dims = _dims(dim, input.ndim)
    c = _correction(unbiased, correction)
    n = int(np.prod([input.shape[d] for d in dims]))
    _warn_dof("var", n, c)
    return apply(_VAR, [input], "VarBackward0", dims=dims, keepdim=keepdim,
                 denom=builtins.max(n - c, 0))


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim`` with Bessel's correction by default."""
    _check_float_var(input)
    dims = _dims(dim, input.ndim)
    c = _correction(unbiased, correction)
    n = int(np.prod([input.shape[d] for d in dims]))
    _warn_dof("std", n, c)
    return apply(_STD, [input], "StdBackward0", dims=dims, keepdim=keepdim,
                 denom=builtins.max(n - c, 0))


def _var_forward(x, dims, keepdim, denom):
    n = builtins.max(1, int(np.prod([x.shape[d] for d in dims])))
    mu = L.binary(ew.DIV, L.reduce(rd.SUM, x, dims, x.dtype).reshape(_keep_shape(x.shape, dims)),
                  np.array(n, x.dtype), x.dtype)
    centred = L.binary(ew.SUB, x, mu, x.dtype)
    sq = L.binary(ew.MUL, centred, centred, x.dtype)
    total = _reduce_forward(rd.SUM)(sq, dims, keepdim, x.dtype)
    return L.binary(ew.DIV, total, np.array(denom, x.dtype), x.dtype)


def _centred(c):
    x, dims = c.saved(0), c.attrs["dims"]
    return x - mean(x, dims, keepdim=True)


_VAR = defop("var", _var_forward,
             lambda c, g: (_expand_grad(g, c) * 2 * _centred(c) / c.attrs["denom"],), (0,),
             meta=_reduce_meta)
_STD = defop("std", lambda x, **a: L.unary(ew.SQRT, _var_forward(x, **a)),
             lambda c, g: (_expand_grad(where(c.saved("out") == 0, 0.0, g / c.saved("out")), c)
                           * _centred(c) / c.attrs["denom"],), (0, "out"), meta=_reduce_meta)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def _lse_forward(x, dims, keepdim):
    keep = _keep_shape(x.shape, dims)
    m = L.reduce(rd.MAX, x, dims, x.dtype).reshape(keep)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    shifted = L.unary(ew.EXP, L.binary(ew.SUB, x, m, x.dtype))
    s = L.reduce(rd.SUM, shifted, dims, x.dtype).reshape(keep)
    out = L.binary(ew.ADD, L.unary(ew.LOG, s), m, x.dtype)
    return out if keepdim else out.reshape(tuple(n for i, n in enumerate(x.shape)
                                                 if i not in dims))


def _lse_vjp(c, g):
    x, out = c.saved(0), c.saved("out")
    if not c.attrs["keepdim"]:
        out = reshape(out, _keep_shape(x.shape, c.attrs["dims"]))
    return (_expand_grad(g, c) * exp(x - out),)


_LOGSUMEXP = defop("logsumexp", _lse_forward, _lse_vjp, (0, "out"), meta=_reduce_meta)


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input), dim))`` computed without overflow."""
    x = input if input.dtype.is_floating_point else input.to(dt.get_default_dtype())
    return apply(_LOGSUMEXP, [x], "LogsumexpBackward0", dims=_dims(dim, x.ndim),
                 keepdim=keepdim)


# --- matrix products -----------------------------------------------------------

def _check_same_dtype(a, b):
    if a.dtype is not b.dtype:
        raise RuntimeError("expected m1 and m2 to have the same dtype, but got: "
                           f"{_C_NAMES[a.dtype.name].lower()} != {_C_NAMES[b.dtype.name].lower()}")


_MM = defop("mm", lambda a, b: L.mm(a, b),
            lambda c, g: (mm(g, c.saved(1).t()) if c.needs_input_grad[0] else None,
                          mm(c.saved(0).t(), g) if c.needs_input_grad[1] else None), (0, 1),
            meta=lambda m: [((m[0][0][0], m[1][0][1]), m[0][1])])
_BMM = defop("bmm", lambda a, b: L.bmm(a, b),
             lambda c, g: (bmm(g, c.saved(1).transpose(1, 2)) if c.needs_input_grad[0] else None,
                           bmm(c.saved(0).transpose(1, 2), g) if c.needs_input_grad[1] else None),
             (0, 1), meta=lambda m: [((m[0][0][0], m[0][0][1], m[1][0][2]), m[0][1])])


def mm(input, mat2):
    """Matrix product of two 2-D tensors."""
    if input.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if mat2.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    if input.shape[1] != mat2.shape[0]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                           f"{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})")
    _check_same_dtype(input, mat2)
    return apply(_MM, [input, mat2], "MmBackward0")


def bmm(input, mat2):
    """Batched matrix product of two 3-D tensors."""
    if input.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if mat2.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    b, n, k = input.shape
    if mat2.shape[:2] != (b, k):
        raise RuntimeError("Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{b}, {k}] but got: [{mat2.shape[0]}, {mat2.shape[1]}].")
    _check_same_dtype(input, mat2)
    return apply(_BMM, [input, mat2], "BmmBackward0")


_DOT = defop("dot", lambda a, b: L.mm(a.reshape(1, -1), b.reshape(-1, 1)).reshape(()),
             lambda c, g: (g * c.saved(1) if c.needs_input_grad[0] else None,
                           g * c.saved(0) if c.needs_input_grad[1] else None), (0, 1),
             meta=lambda m: [((), m[0][1])])
_MV = defop("mv", lambda a, v: L.mm(a, v.reshape(-1, 1)).reshape(-1),
            lambda c, g: (mm(g.reshape(-1, 1), c.saved(1).reshape(1, -1))
                          if c.needs_input_grad[0] else None,
                          mv(c.saved(0).t(), g) if c.needs_input_grad[1] else None), (0, 1),
            meta=lambda m: [((m[0][0][0],), m[0][1])])


def dot(input, other):
    """Inner product of two 1-D tensors."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape != other.shape:
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
            f"[{other.shape[0]}] to have the same number of elements, but got {input.shape[0]} "
            f"and {other.shape[0]} elements respectively")
    if input.dtype is not other.dtype:
        raise RuntimeError("dot : expected both vectors to have same dtype, but found "
                           f"{_C_NAMES[input.dtype.name]} and {_C_NAMES[other.dtype.name]}")
    return apply(_DOT, [input, other], "DotBackward0")


def mv(input, vec):
    """Matrix-vector product."""
    if input.ndim != 2 or vec.ndim != 1 or input.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({input.shape[0]}), mat "
                           f"({'x'.join(map(str, input.shape))}), vec ({vec.shape[0]})")
    _check_same_dtype(input, vec)
    return apply(_MV, [input, vec], "MvBackward0")


def _linear_forward(x, w, b=None):
    out = L.mm(x, w.T)
    return out if b is None else L.binary(ew.ADD, out, b, out.dtype)


def _linear_vjp(c, g):
    x, w = c.saved(0), c.saved(1)
    need = c.needs_input_grad
    return (mm(g, w) if need[0] else None,
            mm(g.t(), x) if need[1] else None,
            sum(g, 0) if len(need) > 2 and need[2] else None)


def _linear_meta(m):
    """The output of ``input @ weight.T (+ bias)`` for 2-D input and weight of one dtype and
    a matching 1-D bias; None for any other form (``linear`` checks it and takes another
    path: the recorder then leaves the op to it)."""
    (xs, xd), (ws, wd) = m[0], m[1]
    if (len(xs) != 2 or len(ws) != 2 or xs[1] != ws[1] or wd != xd
            or (len(m) > 2 and (m[2][0] != ws[:1] or m[2][1] != xd))):
        return None
    return [((xs[0], ws[0]), xd)]


_LINEAR = defop("linear", _linear_forward, _linear_vjp, (0, 1), meta=_linear_meta)


# Lazy mode's Sequential lane records a Linear and the Tanh, ReLU or Sigmoid after it as
# one op (one recorded op per layer instead of two; one pass less when lowered). Its
# grad_fn is what the two would have made: the activation's node, whose input is the
# linear node (nothing the user holds is the linear output in between: each node saves
# only inputs, or its own output). Eager mode runs the layers as they are.
# per activation: its elementwise code, grad_fn name and backward from the output
_ACTIVATIONS = {"tanh": (ew.TANH, "TanhBackward0", tanh_backward),
                "relu": (ew.RELU, "ReluBackward0", threshold_backward),
                "sigmoid": (ew.SIGMOID, "SigmoidBackward0", sigmoid_backward)}


def _linear_act_forward(x, w, b, act):
    return L.unary(_ACTIVATIONS[act][0], _linear_forward(x, w, b))


def _linear_act_vjp(c, g):
    return _linear_vjp(c, _ACTIVATIONS[c.attrs["act"]][2](g, c.saved("out")))


def _linear_act_meta(m, act):
    return _linear_meta(m) if len(m) == 3 else None


def _linear_act_nodes(p, saved_out):
    x, w, b = p.inputs
    inner = node_class("AddmmBackward0")(_LINEAR, _NO_ATTRS, [x, w, b], 1)
    inner.save(0, x)
    inner.save(1, w)
    middle = Tensor._make(fake_array(p.shape, p.dtype, (0,) * len(p.shape)))  # only an edge
    middle._requires_grad, middle._grad_fn = True, inner
    act = _ACTIVATIONS[p.attrs["act"]]
    outer = node_class(act[1])(REGISTRY[p.attrs["act"]], _NO_ATTRS, [middle], 1)
    outer._saved["out"] = saved_out(outer)
    return [inner, outer]


_LINEAR_ACT = defop("linear_act", _linear_act_forward, _linear_act_vjp, (0, 1, "out"),
                    meta=_linear_act_meta, nodes=_linear_act_nodes)
# per activation: the attributes, their key and the grad_fn name, made once
LINEAR_ACT_LANES = {act: ({"act": act}, (("act", act),), name)
                    for act, (_, name, _) in _ACTIVATIONS.items()}


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one op (``AddmmBackward0``, as PyTorch records it)."""
    if type(input) is Tensor and isinstance(weight, Tensor) and isinstance(bias, Tensor):
        # the common case first: 2-D float input, weight and matching 1-D bias
        xs, ws, bs = input._shape, weight._shape, bias._shape
        d = input._npdtype
        if (len(xs) == 2 and len(ws) == 2 and xs[1] == ws[1] and bs == ws[:1]
                and weight._npdtype is d and bias._npdtype is d):
            if _lazy._STATE["lazy"]:
                out = _lazy.record(_LINEAR, [input, weight, bias], _NO_ATTRS, "AddmmBackward0",
                                   ())
                if out is not None:
                    return out
            return apply(_LINEAR, [input, weight, bias], "AddmmBackward0")
    if input.ndim == 2 and weight.ndim == 2 and (bias is None or bias.ndim <= 1):
        if input.shape[1] != weight.shape[1]:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({input.shape[0]}x"
                               f"{input.shape[1]} and {weight.shape[1]}x{weight.shape[0]})")
        _check_same_dtype(input, weight)
        if bias is None:
            return apply(_LINEAR, [input, weight], "MmBackward0")
        if bias.shape not in ((weight.shape[0],), (1,), ()) or bias.dtype is not input.dtype:
            return matmul(input, t(weight)) + bias
        return apply(_LINEAR, [input, weight, bias], "AddmmBackward0")
    out = matmul(input, t(weight))
    return out if bias is None else out + bias


def matmul(input, other):
    """NumPy-style matrix product: dot, mv, mm or broadcast batched mm by the operands' ranks."""
    if not isinstance(other, Tensor) or not isinstance(input, Tensor):
        raise TypeError("matmul(): argument 'other' must be Tensor")
    a, b = input.ndim, other.ndim
    if a == 0 or b == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D, but they are "
                           f"{a}D and {b}D")
    if a == 1 and b == 1:
        return dot(input, other)
    if a == 2 and b == 1:
        return mv(input, other)
    if a == 1 and b == 2:
        return squeeze(mm(unsqueeze(input, 0), other), 0)
    if a == 2 and b == 2:
        return mm(input, other)
    if b <= 2:  # fold the batch of ``input`` into rows: one mm
        x = input if b == 2 else input
        w = other if b == 2 else unsqueeze(other, 1)
        rows = reshape(x, (-1, x.shape[-1]))
        out = mm(rows, w)
        shape = input.shape[:-1] + ((w.shape[1],) if b == 2 else ())
        return _reshape(out, shape, "UnsafeViewBackward0")
    x = unsqueeze(input, 0) if a == 1 else input
    y = unsqueeze(other, -1) if False else other
    if x.shape[-1] != y.shape[-2]:
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{int(np.prod(x.shape[:-2]))}, {x.shape[-1]}] but got: "
                           f"[{int(np.prod(y.shape[:-2]))}, {y.shape[-2]}].")
    batch = _broadcast_shape(x.shape[:-2], y.shape[:-2])
    x3 = reshape(expand(x, batch + x.shape[-2:]), (-1,) + x.shape[-2:])
    y3 = reshape(expand(y, batch + y.shape[-2:]), (-1,) + y.shape[-2:])
    out = _reshape(bmm(x3, y3), batch + (x.shape[-2], y.shape[-1]), "UnsafeViewBackward0")
    return squeeze(out, -2) if a == 1 else out


# --- shape ops (views where numpy allows) ----------------------------------------

def _reshape_forward(x, shape):
    return x.reshape(shape)


_VIEW = defop("view", _reshape_forward,
              lambda c, g: (reshape(g, c._inputs_meta[0][0]),), view=True)


def _infer_shape(shape, numel):
    if -1 not in shape and math.prod(shape) == numel and builtins.min(shape, default=0) >= 0:
        return tuple(shape)  # the common case: nothing to infer or check further
    shape = list(shape)
    for i, s_ in enumerate(shape):
        if s_ < -1:
            raise RuntimeError(f"invalid shape dimension {s_} at index {i} of shape {shape}")
    infer = [i for i, s in enumerate(shape) if s == -1]
    if len(infer) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = int(np.prod([s for s in shape if s != -1]))
    if infer:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[infer[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    for s in shape:
        if s < 0:
            raise RuntimeError(f"invalid shape dimension {s}")
    return tuple(shape)


def _layout(t):
    """``t``'s array, or for a pending tensor an array over no memory laid out as it will be."""
    return t._value if t._value is not None else _lazy._layout(t)


def _viewable(input, shape):
    """Whether ``input`` can take ``shape`` without a copy (numpy decides on its layout)."""
    arr = _layout(input)
    if arr.size == 0:
        return True
    try:
        return np.may_share_memory(arr, arr.reshape(shape, copy=False))
    except ValueError:
        return False


def _reshape(input, shape, name):
    return apply(_VIEW, [input], name, shape=tuple(shape))


def reshape(input, *shape):
    """The same values in a new shape; a view when the layout allows, else a copy."""
    shape = _infer_shape(_shape_tuple(shape), input.numel())
    v = input._value
    if v.flags.c_contiguous if v is not None else input._lazy.layout is None:
        # contiguous (a pending output not itself a view is laid out contiguously): a view
        return _reshape(input, shape, "ViewBackward0")
    if not _viewable(input, shape):
        return _reshape(input, shape, "UnsafeViewBackward0")
    contiguous_ = _layout(input).flags.c_contiguous
    return _reshape(input, shape, "ViewBackward0" if contiguous_ else "ReshapeAliasBackward0")


def _shape_tuple(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def view(input, *shape):
    """A view with a new shape; fails when the memory layout does not allow one."""
    if len(shape) == 1 and isinstance(shape[0], dt.dtype):
        raise RuntimeError("view(dtype) is not supported by jitgrad")
    shape = _infer_shape(_shape_tuple(shape), input.numel())
    if not _viewable(input, shape):
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one "
            "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
    return _reshape(input, shape, "ViewBackward0")


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one."""
    if input.ndim == 0:
        return reshape(input, (1,))
    s, e = _dim(start_dim, input.ndim), _dim(end_dim, input.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    shape = input.shape[:s] + (-1,) + input.shape[e + 1:]
    return reshape(input, shape)


def unflatten(input, dim, sizes):
    d = _dim(dim, input.ndim)
    return reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


def squeeze(input, dim=None):
    """Remove size-1 dims (all, one, or a tuple of them)."""
    if dim is None:
        shape = tuple(n for n in input.shape if n != 1)
        return _reshape(input, shape, "SqueezeBackward0")
    dims = _dims(dim, input.ndim)
    shape = tuple(n for i, n in enumerate(input.shape) if not (i in dims and n == 1))
    name = "SqueezeBackward2" if isinstance(dim, (tuple, list)) else "SqueezeBackward1"
    return _reshape(input, shape, name)


def unsqueeze(input, dim):
    """Insert a size-1 dim at ``dim``."""
    d = _dim(dim, input.ndim + 1)
    shape = input.shape[:d] + (1,) + input.shape[d:]
    return _reshape(input, shape, "UnsqueezeBackward0")


_PERMUTE = defop("permute", lambda x, dims: x.transpose(dims),
                 lambda c, g: (permute(g, tuple(np.argsort(c.attrs["dims"]))),), view=True)


def permute(input, *dims):
    """Reorder the dims."""
    dims = _shape_tuple(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(
            "permute(sparse_coo): number of dimensions in the tensor input does not match the "
            "length of the desired ordering of dimensions i.e. input.dim() = "
            f"{input.ndim} is not equal to len(dims) = {len(dims)}")
    dims = tuple(_dim(d, input.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return apply(_PERMUTE, [input], "PermuteBackward0", dims=dims)


def _swap(input, dim0, dim1, name):
    n = input.ndim
    d0, d1 = _dim(dim0, n), _dim(dim1, n)
    dims = list(range(n))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return apply(_PERMUTE, [input], name, dims=tuple(dims))


def transpose(input, dim0, dim1):
    """Swap two dims."""
    return _swap(input, dim0, dim1, "TransposeBackward0")


swapaxes = swapdims = transpose


def t(input):
    """Transpose a tensor of at most 2 dims."""
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    if input.ndim < 2:
        return apply(_PERMUTE, [input], "TBackward0", dims=tuple(range(input.ndim)))
    return _swap(input, 0, 1, "TBackward0")


_EXPAND = defop("expand", lambda x, shape: np.broadcast_to(x, shape),
                lambda c, g: (g,), view=True)


def expand(input, *sizes):
    """Broadcast size-1 dims to ``sizes`` without copying (-1 keeps a dim)."""
    sizes = _shape_tuple(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(
            f"expand(jitgrad.{_C_NAMES[input.dtype.name]}Tensor{{{list(input.shape)}}}, "
            f"size={list(sizes)}): the number of sizes provided ({len(sizes)}) must be greater "
            f"or equal to the number of dimensions in the tensor ({input.ndim})")
    lead = len(sizes) - input.ndim
    shape = []
    for i, s in enumerate(sizes):
        have = input.shape[i - lead] if i >= lead else None
        if s == -1:
            if have is None:
                raise RuntimeError(f"The expanded size of the tensor (-1) isn't allowed in a "
                                   f"leading, non-existing dimension {i}")
            s = have
        elif have is not None and have != 1 and have != s:
            raise RuntimeError(
                f"The expanded size of the tensor ({s}) must match the existing size ({have}) at "
                f"non-singleton dimension {i}.  Target sizes: {list(sizes)}.  Tensor sizes: "
                f"{list(input.shape)}")
        shape.append(s)
    shape = tuple(shape)
    if shape == input.shape:
        return apply(_EXPAND, [input], "ExpandBackward0", shape=shape)
    return apply(_EXPAND, [input], "ExpandBackward0", shape=shape)


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, size):
    return expand(input, size)


def sum_to_size(input, *size):
    """Sum ``input`` down to ``size`` (the inverse of broadcasting it there)."""
    shape = _shape_tuple(size)
    lead = input.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, n in enumerate(shape)
                                if n == 1 and input.shape[lead + i] != 1]
    if not dims:
        return input
    out = sum(input, dims, keepdim=True)
    return reshape(out, shape) if lead else out


def _cat_forward(*arrays, dim, dtype):
    return np.concatenate([_as(a, dtype) for a in arrays], axis=dim)


def _cat_vjp(c, g):
    dim = c.attrs["dim"]
    grads, start = [], 0
    for shape, _ in c._inputs_meta:
        n = shape[dim] if len(shape) > dim else 0
        grads.append(narrow(g, dim, start, n) if n or len(shape) > 1 else None)
        start += n
    return grads


def _cat_meta(metas, dim, dtype):
    parts = [m for m in metas if not (len(m[0]) == 1 and m[0][0] == 0)] or metas[:1]
    shape = list(parts[0][0])
    if len(shape) > dim:
        shape[dim] = builtins.sum(m[0][dim] for m in parts)
    return [(tuple(shape), dtype)]


_CAT = defop("cat", _cat_forward, _cat_vjp, meta=_cat_meta)


def cat(tensors, dim=0):
    """Join tensors along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("jitgrad.cat(): expected a non-empty list of Tensors")
    parts = [x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)] or tensors[:1]
    ref = parts[0]
    d = _dim(dim, ref.ndim)
    for i, x in enumerate(tensors):
        if x.ndim == 1 and x.shape[0] == 0:
            continue
        if x.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} "
                               f"and {x.ndim}")
        for k in range(ref.ndim):
            if k != d and x.shape[k] != ref.shape[k]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size "
                    f"{ref.shape[k]} but got size {x.shape[k]} for tensor number {i} in the list.")
    dtype = dt.result_type(*parts) if len(parts) > 1 else ref.dtype
    for x in tensors:
        dtype = dt.promote_types(dtype, x.dtype)
    return apply(_CAT, tensors, "CatBackward0", dim=d, dtype=dtype.np)


concat = concatenate = cat


_STACK = defop("stack", lambda *arrays, dim, dtype: np.stack([_as(a, dtype) for a in arrays],
                                                            axis=dim),
               lambda c, g: [select(g, c.attrs["dim"], i) for i in range(len(c._inputs_meta))],
               meta=lambda metas, dim, dtype: [(metas[0][0][:dim] + (len(metas),)
                                                + metas[0][0][dim:], dtype)])


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, x in enumerate(tensors[1:], 1):
        if x.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(x.shape)} at "
                               f"entry {i}")
    d = _dim(dim, tensors[0].ndim + 1)
    dtype = tensors[0].dtype
    for x in tensors:
        dtype = dt.promote_types(dtype, x.dtype)
    return apply(_STACK, tensors, "StackBackward0", dim=d, dtype=dtype.np)


def _split_forward(x, dim, sizes):
    offsets = np.cumsum((0,) + tuple(sizes))
    return tuple(x[(slice(None),) * dim + (slice(int(a), int(b)),)]
                 for a, b in zip(offsets[:-1], offsets[1:]))


def _split_vjp(c, g):
    shape, dtype = c._inputs_meta[0]
    dim, sizes = c.attrs["dim"], c.attrs["sizes"]
    parts = []
    for gi, n in zip(g, sizes):
        if gi is None:
            gi = zeros(shape[:dim] + (n,) + shape[dim + 1:], dtype=dtype)
        parts.append(gi)
    return (cat(parts, dim),)


_SPLIT = defop("split", _split_forward, _split_vjp, view=True, multi=True)


def split(tensor, split_size_or_sections, dim=0):
    """Split into chunks of a given size (or list of sizes) along ``dim``."""
    d = _dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = tuple(int(s) for s in split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                f"size at dimension {d}), but got split_sizes={list(sizes)}")
        name = "SplitWithSizesBackward0"
    else:
        size = int(split_size_or_sections)
        if size == 0 and n != 0:
            raise RuntimeError("split_size can only be 0 if dimension size is 0, but got "
                               f"dimension size of {n}")
        sizes = tuple(builtins.min(size, n - i) for i in range(0, n, size)) if size else (0,)
        name = "SplitBackward0"
    return apply(_SPLIT, [tensor], name, dim=d, sizes=sizes)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` nearly equal pieces along ``dim``."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: "
                           f"{chunks}")
    n = input.shape[_dim(dim, input.ndim)]
    return split(input, builtins.max(1, -(-n // chunks)), dim)


_UNBIND = defop("unbind", lambda x, dim: tuple(np.moveaxis(x, dim, 0)[i, ...]  # 0-d views, not scalars
                                                for i in range(x.shape[dim])),
                lambda c, g: (stack([gi if gi is not None else
                                     zeros(_drop(c._inputs_meta[0][0], c.attrs["dim"]),
                                           dtype=c._inputs_meta[0][1]) for gi in g],
                                    c.attrs["dim"]),), view=True, multi=True)


def _drop(shape, dim):
    return shape[:dim] + shape[dim + 1:]


def unbind(input, dim=0):
    """The slices along ``dim`` as a tuple."""
    return apply(_UNBIND, [input], "UnbindBackward0", dim=_dim(dim, input.ndim))


# --- indexing -------------------------------------------------------------------

_INDEX_ADD = defop("index_add", lambda g, shape, idx, key=None: L.scatter_add(g, idx, shape),
                   lambda c, g: (take(g, c.attrs["idx"]),),
                   meta=lambda metas, shape, idx, key=None: [(tuple(shape), metas[0][1])])
# ``rows``, when given, is ``(labels, classes)`` with ``idx == arange(n) * classes + labels``:
# how the positions follow from a tensor, so a jitgrad.jit replay can rebuild them
_TAKE = defop("take", lambda x, idx, rows=None: L.gather(x, idx),
              lambda c, g: (apply(_INDEX_ADD, [g], "IndexAddBackward0",
                                  shape=c._inputs_meta[0][0], idx=c.attrs["idx"]),),
              meta=lambda metas, idx, rows=None: [(idx.shape, metas[0][1])])


def take(input, index):
    """Elements at flat positions ``index`` (a tensor or int64 array), shaped like ``index``."""
    idx = index._data if isinstance(index, Tensor) else np.asarray(index, np.int64)
    n = input.numel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].flat[0]
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {n} elements.")
    return apply(_TAKE, [input], "TakeBackward0", idx=np.where(idx < 0, idx + n, idx))


def _index_vjp(c, g):
    shape, key = c._inputs_meta[0][0], c.attrs["key"]
    # ``key`` rides along so a cached lazy program can recompute the positions each step
    return (apply(_INDEX_ADD, [g], "IndexAddBackward0", shape=shape,
                  idx=_flat_positions(shape, key), key=key),)


_INDEX = defop("index", lambda x, key: x[_as_view_key(key)], _index_vjp, view=True)
_INDEX_PUT = defop("index_put",
                   lambda x, v, idx: L.index_put(x, idx, v),
                   lambda c, g: (apply(_INDEX_PUT, [g, _wrap(0, g.dtype)], "IndexPutBackward0",
                                       idx=c.attrs["idx"]) if c.needs_input_grad[0] else None,
                                 take(g, c.attrs["idx"]) if c.needs_input_grad[1] else None),
                   meta=lambda metas, idx: [metas[0]])


def _normalise_key(key, ndim):
    """Turn tensors in an index into numpy arrays and check it, with PyTorch's errors."""
    if not isinstance(key, tuple):
        key = (key,)
    out, advanced, used = [], False, 0
    for k in key:
        if isinstance(k, Tensor):
            if k.dtype.kind == 2:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            k = k._data
            advanced = True
        elif isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            advanced = True
        elif isinstance(k, bool):
            advanced = True
        elif not (k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral))):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or "
                             "byte Variables are valid indices (got "
                             f"{type(k).__name__})")
        if isinstance(k, slice) and k.step is not None and k.step <= 0:
            raise ValueError("step must be greater than zero")
        if k is not None and k is not Ellipsis and not isinstance(k, bool):
            used += k.ndim if isinstance(k, np.ndarray) and k.dtype == np.bool_ else 1
        out.append(k)
    if ndim == 0 and builtins.any(isinstance(k, numbers.Integral) for k in out):
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                         "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
    if used > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    return tuple(out), advanced


def _run_index(fn, *args):
    """Run numpy indexing, rewording its errors as PyTorch's."""
    try:
        return fn(*args)
    except IndexError as e:
        msg = str(e).replace("for axis", "for dimension")
        raise IndexError(msg) from None


def _index_name(key, advanced):
    if advanced:
        return "IndexBackward0"
    for k in reversed(key):
        if isinstance(k, numbers.Integral):
            return "SelectBackward0"
        if isinstance(k, slice) and k != slice(None):
            return "SliceBackward0"
        if k is None:
            return "UnsqueezeBackward0"
    # only full slices and ``...``: a slice records a Slice node, ``...`` an Alias
    return "SliceBackward0" if builtins.any(isinstance(k, slice) for k in key) else \
        "AliasBackward0"


def getitem(input, key):
    """``input[key]``: a view for ints, slices, None and ``...``; a copy for tensor indices."""
    key, advanced = _normalise_key(key, input.ndim)
    # raises on bad indices before anything is recorded; zero strides: nothing real is read
    _run_index(lambda: fake_array(input.shape, input._npdtype, (0,) * input.ndim)[key])
    if (input._value is not None and not input._requires_grad and _lazy._STATE["lazy"]
            and _lazy._tls.capture is None and builtins.all(type(k) is slice for k in key)):
        # lazy mode: slices of a computed tensor that needs no gradient (a batch cut
        # from a dataset) are taken at once, as numpy takes them, so the segment reads
        # the slice as its input: where it starts is no part of the recorded structure
        # (a Program, and its arena, for each batch otherwise)
        out = Tensor._make(_INDEX.forward(input._value, key=key))
        return finish(_INDEX, [input], [out], _index_name(key, advanced), {"key": key})
    return apply(_INDEX, [input], _index_name(key, advanced), key=key)


def select(input, dim, index):
    """The slice at ``index`` along ``dim`` (drops that dim)."""
    d = _dim(dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(input.shape)} at dimension {d}")
    return apply(_INDEX, [input], "SelectBackward0", key=(slice(None),) * d + (index,))


def narrow(input, dim, start, length):
    """The ``length`` elements from ``start`` along ``dim``, as a view."""
    d = _dim(dim, input.ndim)
    if start < 0:
        start += input.shape[d]
    if start + length > input.shape[d]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({input.shape[d]}).")
    return apply(_INDEX, [input], "SliceBackward0",
                 key=(slice(None),) * d + (slice(start, start + length),))


def index_select(input, dim, index):
    """Entries along ``dim`` at positions ``index`` (a 1-D int tensor)."""
    d = _dim(dim, input.ndim)
    if not isinstance(index, Tensor) or index.ndim > 1 or index.dtype.kind != 1:
        raise IndexError("index_select(): Expected a 1-D int64 or int32 index tensor")
    key, _ = _normalise_key((slice(None),) * d + (index,), input.ndim)
    n = input.shape[d] if input.ndim else 1
    idx = index._data
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError("index out of range in self")
    return apply(_INDEX, [input], "IndexSelectBackward0", key=key)


# --- softmax family --------------------------------------------------------------

_SOFTMAX = defop("softmax", lambda x, dim: L.softmax(x, dim, False),
                 lambda c, g: (c.saved("out") * (g - sum(g * c.saved("out"), c.attrs["dim"],
                                                           keepdim=True)),), ("out",),
                 meta=_same_meta)
_LOG_SOFTMAX = defop("log_softmax", lambda x, dim: L.softmax(x, dim, True),
                     lambda c, g: (g - exp(c.saved("out")) * sum(g, c.attrs["dim"],
                                                                 keepdim=True),), ("out",),
                     meta=_same_meta)


def _softmax(op, input, dim, dtype, name, kernel):
    if dim is None:
        raise TypeError(f"{name}() missing required argument 'dim' (jitgrad, unlike PyTorch's "
                        "deprecated implicit choice, needs it)")
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise _not_implemented(kernel, input.dtype)
    grad_name = "SoftmaxBackward0" if op is _SOFTMAX else "LogSoftmaxBackward0"
    return apply(op, [input], grad_name, dim=_dim(dim, input.ndim))


def softmax(input, dim=None, dtype=None):
    """``exp(x) / sum(exp(x), dim)``, computed stably."""
    return _softmax(_SOFTMAX, input, dim, dtype, "softmax", "softmax_lastdim_kernel_impl")


def log_softmax(input, dim=None, dtype=None):
    """``x - logsumexp(x, dim)``, computed stably."""
    return _softmax(_LOG_SOFTMAX, input, dim, dtype, "log_softmax",
                    "log_softmax_lastdim_kernel_impl")


# --- in-place updates -------------------------------------------------------------

_OVERLAP = ("unsupported operation: more than one element of the written-to tensor refers to "
            "a single memory location. Please clone() the tensor before performing the "
            "operation.")


def _check_inplace(self):
    if is_grad_enabled():
        if self.grad_fn is None and self._requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation.")
        if self._view_fn is not None and self._base.grad_fn is None and self._base._requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                               "in-place operation.")
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


# tensors.py's helpers reach these names through the module namespace
from .tensor import arange, zeros  # noqa: E402
from . import lazy as _lazy  # noqa: E402  (lazy mode records through apply)
from .lazy import recorder as _recorder  # noqa: E402  (its lanes are made below)

_add_lane = _binary_lane(_ADD, "AddBackward0", _add)  # (they read the recorder when made)
_sub_lane = _binary_lane(_SUB, "SubBackward0", _sub)
_mul_lane = _binary_lane(_MUL, "MulBackward0", _mul)
_div_lane = _binary_lane(_DIV, "DivBackward0", _div)
for _name, _op, _grad_fn_name in _UNARY:  # (nothing has taken these functions yet)
    globals()[_name] = _recorder.unary_lane(_op, _grad_fn_name, globals()[_name])
del _name, _op, _grad_fn_name

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "builtins", "collections", "numbers", "np", "L", "dt", "ew", "rd", "Tensor", "Op",
    "REGISTRY", "defop", "apply", "inplace", "setitem", "getitem", "is_grad_enabled", "linear",
    "no_grad", "node_class", "arange", "zeros", "finish", "threshold_backward",
    "tanh_backward", "sigmoid_backward")]
