"""The native tape interpreter: one call runs a whole Program.

A Program is an int64 instruction table (one row per instruction, see the
column constants below), a float64 table of scalar operands, an int64 arena
for index arrays, and one float arena holding the buffers of the step
(intermediates, outputs). Inputs and a training step's gradients are
external buffers: a table says per call whether each is read (written) where
it lives, by address (a batch, an optimizer's parameters and gradients: no
copies), or sits in the arena. Each instruction names its buffers by
reference and, for elementwise work, the 4-D geometry of each operand
(element strides, zero where broadcast); the interpreter builds views and
calls the same kernels eager mode calls. Contiguous same-shape operands take
the 1-D kernels, which LLVM vectorises; convolution and pooling windows
(``_windows``) take the kernels of ``conv``.

The function is compiled once per float dtype and cached on disk: a new graph
structure or size never compiles anything.
"""
import numpy as np
from numba import carray, types
from numba.core import config as numba_config
from numba.extending import intrinsic

from . import conv
from . import elementwise as ew
from . import index as ix
from . import linalg
from . import nn
from . import reduce as rd
from .config import inline_kernel, kernel

# opcodes
UNARY, BINARY, COMPARE, WHERE, CLAMP, POW_SCALAR, COPY, FILL = range(8)
REDUCE, STRIDED_COPY, MM, BMM, GATHER, SCATTER_ADD, SCATTER, SOFTMAX = range(8, 16)
# windows over (N, C, H, W) at A: DIMS N, C, H, W; SA OH, OW, KH, KW; SB the strides and
# paddings (sh, sw, ph, pw); SC the dilations (dh, dw)
IM2COL, COL2IM, POOL_GATHER, POOL_SCATTER = range(16, 20)

# columns of an instruction row
OP, SUB, OUT, A, B, C = range(6)
DIMS = 6            # 4 output dims (elementwise) or sizes (others)
SA, SB, SC = 10, 14, 18  # 4 element strides per operand
FLAT = 22           # bit 0: every operand is contiguous with the output's shape, except
#                     those flagged by bits 1, 2, 3 (A, B, C): scalars read in place;
ROWS = 16           # or (binary only): A and OUT are DIMS[0] x DIMS[1] matrices, B one row
WIDTH = 23

# operand references: an arena offset, or (from 1 << EXT on) offset ``ref & EXT_MASK`` into
# external buffer ``ref >> EXT`` (a Program's inputs, a training step's gradients), placed
# per call by a row of the call's table: its address (memory the caller keeps alive: an
# input where it lives, a gradient's home in an optimizer's arena), or 0 for its place in
# the arena; that place; its size in elements
EXT = 40
EXT_ONE = 1 << EXT
EXT_MASK = EXT_ONE - 1
ADDRESS, HOME, SIZE = range(3)
CHECKED = bool(numba_config.BOUNDSCHECK)  # fixed when compiled (the cache folder says which)


@intrinsic
def _pointer(typingctx, like, address):
    """``address`` as a pointer to ``like``'s element type."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[1], context.get_value_type(signature.return_type))
    return types.CPointer(like.dtype)(like, address), codegen


@inline_kernel
def _span(arena, base, table, ref, n):
    """``n`` elements at operand reference ``ref``; ``base``: the arena's address.

    The view is made from a pointer: it carries no reference count (whose updates, and
    choosing among arrays, would cost more than a small instruction's work). Its bounds
    are checked where Numba's are (the tests): the check costs as much as the rest."""
    item = arena.itemsize
    if ref < EXT_ONE:
        if CHECKED and (ref < 0 or n < 0 or ref + n > arena.shape[0]):
            raise IndexError("an instruction's operand lies outside the arena")
        return carray(_pointer(arena, base + ref * item), n)
    s, rel = ref >> EXT, ref & EXT_MASK
    if CHECKED and (n < 0 or rel + n > table[s, SIZE]):
        raise IndexError("an instruction's operand lies outside its buffer")
    at = table[s, ADDRESS]
    if at == 0:
        at = base + table[s, HOME] * item
    return carray(_pointer(arena, at + rel * item), n)


@inline_kernel
def _tail(arena, base, table, ref):
    """The memory from operand reference ``ref`` to the end of its buffer (see ``_span``)."""
    if ref < EXT_ONE:
        return _span(arena, base, table, ref, arena.shape[0] - ref)
    return _span(arena, base, table, ref, table[ref >> EXT, SIZE] - (ref & EXT_MASK))


@kernel
def _view(src, row, col):
    """The 4-D strided view from ``src`` on with element strides ``row[col:col+4]``."""
    item = src.itemsize
    return np.lib.stride_tricks.as_strided(
        src, shape=(row[DIMS], row[DIMS + 1], row[DIMS + 2], row[DIMS + 3]),
        strides=(row[col] * item, row[col + 1] * item, row[col + 2] * item, row[col + 3] * item))


@kernel
def _flat(src, n, scalar):
    """``n`` elements from ``src`` on, or (``scalar`` nonzero) its first one ``n`` times."""
    return np.lib.stride_tricks.as_strided(src, shape=(n,),
                                           strides=(0 if scalar else src.itemsize,))


@kernel
def _out4(dst, row):
    d1, d2, d3 = row[DIMS + 1], row[DIMS + 2], row[DIMS + 3]
    item = dst.itemsize
    return np.lib.stride_tricks.as_strided(
        dst, shape=(row[DIMS], d1, d2, d3),
        strides=(d1 * d2 * d3 * item, d2 * d3 * item, d3 * item, item))


@kernel
def address(a):
    """The address of ``a``'s first element (for the buffer table: numpy's
    ``__array_interface__`` builds a dict, 1 us; this call costs 0.15 us)."""
    return a.ctypes.data


@kernel
def interpret(code, scalars, indices, arena, table):
    """Run every instruction of ``code`` over ``arena`` and the external buffers that
    ``table`` places, in order."""
    zero = arena.dtype.type(0)
    one = arena.dtype.type(1)
    base = arena.ctypes.data
    rows, step, width = code.ctypes.data, code.strides[0], code.shape[1]
    for k in range(code.shape[0]):
        # each row a view from a pointer, as _span's operand views: no reference count
        # to update per instruction (5% of a program of small ops)
        row = carray(_pointer(code, rows + k * step), width)
        op = row[OP]
        n = row[DIMS] * row[DIMS + 1] * row[DIMS + 2] * row[DIMS + 3]
        if op <= COPY:
            if row[FLAT] == 1:
                out = _span(arena, base, table, row[OUT], n)
                a = _span(arena, base, table, row[A], n)
                if op == UNARY:
                    if row[OUT] == row[A]:
                        ew.unary_in_place(row[SUB], out)
                    else:
                        ew.unary(row[SUB], a, out)
                elif op == BINARY:
                    if row[OUT] == row[A]:  # (and maybe B too: out = out * out)
                        ew.binary_in_place(row[SUB], out, out if row[OUT] == row[B] else
                                           _span(arena, base, table, row[B], n), True)
                    elif row[OUT] == row[B]:
                        ew.binary_in_place(row[SUB], a, out, False)
                    else:
                        ew.binary(row[SUB], a, _span(arena, base, table, row[B], n), out)
                elif op == COMPARE:
                    b = _span(arena, base, table, row[B], n)
                    for i in range(n):
                        out[i] = one if ew_compare1(row[SUB], a[i], b[i]) else zero
                elif op == WHERE:
                    b = _span(arena, base, table, row[B], n)
                    c = _span(arena, base, table, row[C], n)
                    for i in range(n):
                        out[i] = b[i] if a[i] != zero else c[i]
                elif op == CLAMP:
                    ew.clamp(a, arena.dtype.type(scalars[row[SUB]]),
                             arena.dtype.type(scalars[row[SUB] + 1]), out)
                elif op == POW_SCALAR:
                    ew.pow_scalar(a, scalars[row[SUB]], out)
                else:
                    out[:] = a
            elif row[FLAT] == ROWS:  # out = a (op) b with b one row added to each of a's
                nr, nc = row[DIMS], row[DIMS + 1]
                ew.binary_rows(row[SUB], _span(arena, base, table, row[A], n).reshape((nr, nc)),
                               _span(arena, base, table, row[B], nc),
                               _span(arena, base, table, row[OUT], n).reshape((nr, nc)))
            elif row[FLAT] > 1:  # 1-D, with the operands flagged in FLAT broadcast scalars
                out = _span(arena, base, table, row[OUT], n)
                a = _flat(_tail(arena, base, table, row[A]), n, row[FLAT] & 2)
                b = _flat(_tail(arena, base, table, row[B]), n, row[FLAT] & 4)
                if op == BINARY:
                    ew.binary(row[SUB], a, b, out)
                elif op == COMPARE:  # the bool kernels store 1 and 0 into the float arena
                    ew.compare(row[SUB], a, b, out)
                else:
                    ew.where(a, b, _flat(_tail(arena, base, table, row[C]), n, row[FLAT] & 8),
                             out)
            else:
                out4 = _out4(_tail(arena, base, table, row[OUT]), row)
                a4 = _view(_tail(arena, base, table, row[A]), row, SA)
                if op == UNARY:
                    ew.unary_nd(row[SUB], a4, out4)
                elif op == BINARY:
                    ew.binary_nd(row[SUB], a4, _view(_tail(arena, base, table, row[B]), row, SB),
                                 out4)
                elif op == COMPARE:
                    b4 = _view(_tail(arena, base, table, row[B]), row, SB)
                    for i0 in range(out4.shape[0]):
                        for i1 in range(out4.shape[1]):
                            for i2 in range(out4.shape[2]):
                                for i3 in range(out4.shape[3]):
                                    out4[i0, i1, i2, i3] = one if ew_compare1(
                                        row[SUB], a4[i0, i1, i2, i3], b4[i0, i1, i2, i3]) else zero
                elif op == WHERE:
                    b4 = _view(_tail(arena, base, table, row[B]), row, SB)
                    c4 = _view(_tail(arena, base, table, row[C]), row, SC)
                    for i0 in range(out4.shape[0]):
                        for i1 in range(out4.shape[1]):
                            for i2 in range(out4.shape[2]):
                                for i3 in range(out4.shape[3]):
                                    out4[i0, i1, i2, i3] = (b4[i0, i1, i2, i3]
                                                            if a4[i0, i1, i2, i3] != zero
                                                            else c4[i0, i1, i2, i3])
                elif op == CLAMP:
                    ew.clamp_nd(a4, arena.dtype.type(scalars[row[SUB]]),
                                arena.dtype.type(scalars[row[SUB] + 1]), out4)
                elif op == POW_SCALAR:
                    ew.pow_scalar_nd(a4, scalars[row[SUB]], out4)
                else:
                    ew.cast_nd(a4, out4)
        elif op == FILL:
            _span(arena, base, table, row[OUT], row[DIMS])[:] = arena.dtype.type(scalars[row[SUB]])
        elif op == REDUCE:
            # DIMS: A, R, B of a contiguous input; SUB: reduce.SUM/PROD/MAX/MIN
            na, nr, nb = row[DIMS], row[DIMS + 1], row[DIMS + 2]
            x = _span(arena, base, table, row[A], na * nr * nb)
            out = _span(arena, base, table, row[OUT], na * nb)
            if row[SUB] == rd.SUM and nb == 1:
                rd.sum_rows(x.reshape((na, nr)), out)
            else:
                rd.reduce(row[SUB], x.reshape((na, nr, nb)), out.reshape((na, nb)))
        elif op == STRIDED_COPY:
            # a contiguous block at A written into a strided window at OUT (strides SB)
            ew.cast_nd(_view(_tail(arena, base, table, row[A]), row, SA), _view(_tail(arena, base, table, row[OUT]), row, SB))
        elif op == MM:
            nn_, kk, mm_ = row[DIMS], row[DIMS + 1], row[DIMS + 2]
            a = _span(arena, base, table, row[A], nn_ * kk)
            b = _span(arena, base, table, row[B], kk * mm_)
            out = _span(arena, base, table, row[OUT], nn_ * mm_).reshape((nn_, mm_))
            if kk == 0:
                out[:] = zero
            elif row[SUB] == 0:
                np.dot(a.reshape((nn_, kk)), b.reshape((kk, mm_)), out)
            elif row[SUB] == 1:
                np.dot(a.reshape((kk, nn_)).T, b.reshape((kk, mm_)), out)
            elif row[SUB] == 2:
                np.dot(a.reshape((nn_, kk)), b.reshape((mm_, kk)).T, out)
            else:
                np.dot(a.reshape((kk, nn_)).T, b.reshape((mm_, kk)).T, out)
        elif op == BMM:
            nb_, nn_, kk, mm_ = row[DIMS], row[DIMS + 1], row[DIMS + 2], row[DIMS + 3]
            a3 = _span(arena, base, table, row[A], nb_ * nn_ * kk).reshape((nb_, nn_, kk))
            b3 = _span(arena, base, table, row[B], nb_ * kk * mm_).reshape((nb_, kk, mm_))
            o3 = _span(arena, base, table, row[OUT], nb_ * nn_ * mm_).reshape((nb_, nn_, mm_))
            if kk == 0:
                o3[:] = zero
            else:
                linalg.bmm(a3, b3, o3)
        elif op == GATHER:
            # DIMS[0]: count; SUB: offset of the index list in ``indices``
            m = row[DIMS]
            ix.gather(_tail(arena, base, table, row[A]), indices[row[SUB]:row[SUB] + m],
                      _span(arena, base, table, row[OUT], m))
        elif op == SCATTER_ADD:
            # out (DIMS[1] elements) = 0, then out[idx] += src
            m = row[DIMS]
            out = _span(arena, base, table, row[OUT], row[DIMS + 1])
            out[:] = zero
            ix.scatter_add(_span(arena, base, table, row[A], m),
                           indices[row[SUB]:row[SUB] + m], out)
        elif op == SCATTER:
            # out = x (DIMS[1] elements), then out[idx] = src
            m = row[DIMS]
            out = _span(arena, base, table, row[OUT], row[DIMS + 1])
            out[:] = _span(arena, base, table, row[B], row[DIMS + 1])
            ix.scatter(_span(arena, base, table, row[A], m), indices[row[SUB]:row[SUB] + m],
                       out)
        elif op == SOFTMAX:
            na, nr, nb = row[DIMS], row[DIMS + 1], row[DIMS + 2]
            x = _span(arena, base, table, row[A], na * nr * nb).reshape((na, nr, nb))
            out = _span(arena, base, table, row[OUT], na * nr * nb).reshape((na, nr, nb))
            nn.softmax(x, out, row[SUB] == 1)
        elif op >= IM2COL:
            _windows(op, row, arena, base, table)
    return 0


@kernel
def _windows(op, row, arena, base, table):
    """The window instructions (convolution's im2col and col2im, max pooling)."""
    n, c, h, w = row[DIMS], row[DIMS + 1], row[DIMS + 2], row[DIMS + 3]
    oh, ow, kh, kw = row[SA], row[SA + 1], row[SA + 2], row[SA + 3]
    sh, sw, ph, pw = row[SB], row[SB + 1], row[SB + 2], row[SB + 3]
    dh, dw = row[SC], row[SC + 1]
    image, pooled, columns = (n, c, h, w), (n, c, oh, ow), (n, oh, ow, c, kh, kw)
    n_image, n_pooled, n_columns = n * c * h * w, n * c * oh * ow, n * oh * ow * c * kh * kw
    if op == IM2COL:  # A: the image; OUT: its columns
        x = _span(arena, base, table, row[A], n_image).reshape(image)
        cols = _span(arena, base, table, row[OUT], n_columns).reshape(columns)
        conv.im2col(x, sh, sw, ph, pw, dh, dw, cols)
    elif op == COL2IM:  # A: columns; OUT: the image they add up to
        cols = _span(arena, base, table, row[A], n_columns).reshape(columns)
        out = _span(arena, base, table, row[OUT], n_image)
        out[:] = arena.dtype.type(0)
        conv.col2im(cols, sh, sw, ph, pw, dh, dw, out.reshape(image))
    elif op == POOL_GATHER:  # A: values and B: the image whose window maxima pick them
        v = _span(arena, base, table, row[A], n_image).reshape(image)
        x = _span(arena, base, table, row[B], n_image).reshape(image)
        out = _span(arena, base, table, row[OUT], n_pooled).reshape(pooled)
        conv.pool_gather(v, x, kh, kw, sh, sw, ph, pw, dh, dw, out)
    else:  # POOL_SCATTER; A: the pooled gradient, B: the image
        g = _span(arena, base, table, row[A], n_pooled).reshape(pooled)
        x = _span(arena, base, table, row[B], n_image).reshape(image)
        out = _span(arena, base, table, row[OUT], n_image).reshape(image)
        conv.pool_scatter(g, x, kh, kw, sh, sw, ph, pw, dh, dw, out)


@kernel
def ew_compare1(op, x, y):
    if op == ew.EQ:
        return x == y
    if op == ew.NE:
        return x != y
    if op == ew.LT:
        return x < y
    if op == ew.LE:
        return x <= y
    if op == ew.GT:
        return x > y
    if op == ew.GE:
        return x >= y
    if op == ew.AND:
        return (x != 0) and (y != 0)
    if op == ew.OR:
        return (x != 0) or (y != 0)
    return (x != 0) != (y != 0)
