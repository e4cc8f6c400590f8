"""The op registry: every primitive declared once, with its forward and its VJP.

An ``Op`` pairs a forward over numpy arrays (computed by the kernels through
``runtime.backends.cpu``) with a vector-Jacobian rule written in jitgrad's own ops, so a
backward pass is an ordinary graph and higher-order gradients come free.
Broadcasting is undone in one place (``Op.backward`` sums each input's
gradient down to the input's shape) and so is dtype promotion (gradients are
cast back to each input's dtype). The public functions below check their
arguments with PyTorch's error messages before anything runs.
"""
from .registry import (_cast_meta, defop, Op, REGISTRY)  # noqa: F401
from .dispatch import (apply, finish)  # noqa: F401
from .args import (_as, _C_NAMES, _layout, _wrap)  # noqa: F401
from .elementwise import (abs, _ADD, _add, add, allclose, _binary_lane, bitwise_and, bitwise_or,  # noqa: F401
                          bitwise_xor, clamp, clamp_max, clamp_min, clip, clone, contiguous, cos,
                          _DIV, _div, div, divide, eq, equal, exp, _F32, _F64, floor_divide, fmod,
                          ge, greater, greater_equal, gt, isfinite, isnan, le, less, less_equal,
                          log, logical_and, logical_not, logical_or, logical_xor, lt, masked_fill,
                          maximum, minimum, _MUL, _mul, mul, multiply, ne, neg, _NO_ATTRS,
                          not_equal, ones_like_bool, OVERWRITE, pow, reciprocal, relu, remainder,
                          rsqrt, sigmoid, sigmoid_backward, sign, sin, sqrt, square, _SUB, _sub,
                          sub, subtract, tanh, tanh_backward, threshold_backward, _to,
                          true_divide, where)
from .index import (getitem, _INDEX_ADD, index_select, narrow, select, _TAKE, take)  # noqa: F401
from .shape import (broadcast_to, cat, chunk, concat, concatenate, expand, expand_as, flatten,  # noqa: F401
                    permute, reshape, split, squeeze, stack, swapaxes, swapdims, t, transpose,
                    unbind, unflatten, unsqueeze, view)
from .reduce import (all, amax, amin, any, argmax, argmin, _LOG_SOFTMAX, log_softmax, logsumexp,  # noqa: F401
                     max, mean, min, prod, softmax, std, sum, sum_to_size, var, var_mean)
from .linalg import (bmm, dot, _LINEAR, linear, _LINEAR_ACT, LINEAR_ACT_LANES, matmul, mm, mv)  # noqa: F401
from .inplace import (inplace, setitem)  # noqa: F401
from .sorting import (argsort, sort, topk)  # noqa: F401
from .arrange import (named_where, one_hot, roll, tril, triu)  # noqa: F401
from ..core.shapes import broadcast_shape as _broadcast_shape  # noqa: F401

# what ``from jitgrad.ops import *`` (and so ``jitgrad.*``) exports: the public functions
__all__ = [
    "abs", "add", "all", "allclose", "amax", "amin", "any", "argmax", "argmin",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bmm", "broadcast_to", "cat", "chunk", "clamp",
    "clamp_max", "clamp_min", "clip", "clone", "concat", "concatenate", "contiguous", "cos",
    "div", "divide", "dot", "eq", "equal", "exp", "expand", "expand_as", "flatten",
    "floor_divide", "fmod", "ge", "greater", "greater_equal", "gt", "index_select", "isfinite",
    "isnan", "le", "less", "less_equal", "log", "log_softmax", "logical_and", "logical_not",
    "logical_or", "logical_xor", "logsumexp", "lt", "masked_fill", "matmul", "max", "maximum",
    "mean", "min", "minimum", "mm", "mul", "multiply", "mv", "narrow", "ne", "neg",
    "not_equal", "permute", "pow", "prod", "reciprocal", "relu", "remainder", "reshape",
    "rsqrt", "select", "sigmoid", "sign", "sin", "softmax", "split", "sqrt", "square",
    "squeeze", "stack", "std", "sub", "subtract", "sum", "sum_to_size", "swapaxes", "swapdims",
    "t", "take", "tanh", "transpose", "true_divide", "unbind", "unflatten", "unsqueeze", "var",
    "var_mean", "view", "where",
    "argsort", "roll", "sort", "topk", "tril", "triu",  # sorting.py, arrange.py
]
