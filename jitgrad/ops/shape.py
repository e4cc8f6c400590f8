"""Shape ops: reshape/view, squeeze/unsqueeze, permute/transpose, expand, cat/stack,
split/chunk/unbind: views where numpy allows."""
import builtins
import math
import numpy as np

from .. import dtypes as dt
from ..tensor import _dim
from ..tensor import result_type
from ..tensor import zeros
from .args import _C_NAMES, _as, _dims, _layout
from .dispatch import apply
from .index import narrow, select
from .registry import defop
from ..core.shapes import c_strides as _c_strides
from ..kernels.cpu import interpreter as interp
from ..runtime.backends import cpu
from ..runtime.lowering import lower_view

def _reshape_forward(x, shape):
    return x.reshape(shape)


_VIEW = defop("view", _reshape_forward,
              lambda c, g: (reshape(g, c._inputs_meta[0][0]),), view=True, lower=lower_view)


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
                 lambda c, g: (permute(g, tuple(np.argsort(c.attrs["dims"]))),), view=True,
                 lower=lower_view)


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
                lambda c, g: (g,), view=True, lower=lower_view)


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


def _lower_cat(lw, p):
    out = lw.new_out(p)
    d = p.attrs["dim"] if p.op.name == "cat" else None
    st = _c_strides(p.shape)
    start = 0
    for u in p.inputs:
        off, shape = lw.operand(u)
        if p.op.name == "stack":
            k = p.attrs["dim"]
            dst_shape = shape[:k] + (1,) + shape[k:]
            dst_off = start * st[k]
            start += 1
        else:
            if len(shape) == 1 and shape[0] == 0 and len(p.shape) != 1:
                continue
            dst_shape = shape
            dst_off = start * st[d]
            start += shape[d]
        n = int(np.prod(dst_shape, dtype=np.int64))
        if n == 0:
            continue
        # write the contiguous input into the output's strided window
        dims = cpu._coalesce(dst_shape, [_c_strides(dst_shape), st])
        dims = [(1, [0, 0])] * (4 - len(dims)) + dims
        shape4 = tuple(x for x, _ in dims)
        src = tuple(s[0] for _, s in dims)
        dst = tuple(s[1] for _, s in dims)
        lw.row(interp.STRIDED_COPY, 0, out + dst_off, off, dims=shape4, sa=src, sb=dst)
    return out


_CAT = defop("cat", _cat_forward, _cat_vjp, meta=_cat_meta, lower=_lower_cat)


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
    dtype = result_type(*parts) if len(parts) > 1 else ref.dtype
    for x in tensors:
        dtype = dt.promote_types(dtype, x.dtype)
    return apply(_CAT, tensors, "CatBackward0", dim=d, dtype=dtype.np)


concat = concatenate = cat


_STACK = defop("stack", lambda *arrays, dim, dtype: np.stack([_as(a, dtype) for a in arrays],
                                                            axis=dim),
               lambda c, g: [select(g, c.attrs["dim"], i) for i in range(len(c._inputs_meta))],
               meta=lambda metas, dim, dtype: [(metas[0][0][:dim] + (len(metas),)
                                                + metas[0][0][dim:], dtype)], lower=_lower_cat)


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


_SPLIT = defop("split", _split_forward, _split_vjp, view=True, multi=True, lower=lower_view)


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
                                    c.attrs["dim"]),), view=True, multi=True, lower=lower_view)


def _drop(shape, dim):
    return shape[:dim] + shape[dim + 1:]


def unbind(input, dim=0):
    """The slices along ``dim`` as a tuple."""
    return apply(_UNBIND, [input], "UnbindBackward0", dim=_dim(dim, input.ndim))
