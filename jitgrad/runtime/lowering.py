"""Lowering: a recorded segment (plain records: op, inputs, attributes, shape, dtype) to a
Program: arena slots for inputs and outputs, buffer reuse in a cached training step's
backward, and instruction rows emitted by each op's own rule (``Op.lower``, declared with
the op); below, the rules that many ops share."""
import numpy as np

from ..core.shapes import broadcast_strides as _broadcast_strides, c_strides as _c_strides
from ..kernels.cpu import interpreter as interp
from ..core.shapes import fake_array
from .backends import cpu
from .program import Program

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class Lowering:
    """Turns a pending graph into a Program: assigns arena slots and emits rows."""

    def __init__(self, recs, ext, seg, fdtype, outputs=(), private_from=None):
        """``recs``: the segment's outputs in order; ``ext``: the realized tensors it reads;
        ``outputs``: outputs read straight from the arena afterwards: they must be laid out
        contiguously there (not left as a transpose flag). ``private_from``: outputs from
        this position on (but for ``outputs``) are never read after the run (a cached
        training step's backward), so their buffers are reused once dead; its
        ``outputs`` are the leaves' gradients, made external buffers (see ``Program``)."""
        self.pending, self.inputs, self.seg, self.fdtype = recs, ext, seg, fdtype
        self.slots = {id(t): k for k, t in enumerate(ext)}
        self.outputs = outputs
        self.private_from = private_from
        self.free = []   # (size, offset) of dead private buffers
        self.owned = {}  # position -> (offset, size) of a private node's own buffer
        self.rows, self.scalars, self.index_specs = [], [], []
        self.index_len = 0
        self.size = 0
        self.input_slots, self.node_slots = [], []
        self.buf = {}   # ("n", pos) or ("i", slot) -> (offset, shape)
        self.transposed = {}  # node key -> (offset, shape) of a 2-D matrix it transposes
        self.homes = []  # per external buffer: its arena offset (where it goes when copied)
        self.sizes = []  # and its size
        self.external = {p.pos for p in outputs} if private_from is not None else set()
        self.out_bufs = {}  # position of an external output -> its buffer number
        self.must_copy = set()  # input buffers some non-view node's value is read from

    def extern(self, n):
        """A new external buffer of ``n`` elements (its arena home reserved): its reference."""
        self.homes.append(self.alloc(n))
        self.sizes.append(n)
        return len(self.homes) << interp.EXT

    def arena_offset(self, ref):
        """Where reference ``ref`` points when every external buffer sits in the arena."""
        return ref if ref < interp.EXT_ONE else self.homes[(ref >> interp.EXT) - 1] + (ref & interp.EXT_MASK)

    def key(self, u):
        p = u._lazy
        if p is not None and p.seg is self.seg:
            return ("n", p.pos)
        return ("i", self.slots[id(u)])

    def alloc(self, n):
        off = self.size
        self.size += max(int(n), 1)
        return off

    def scalar(self, value):
        self.scalars.append(float(value))
        return len(self.scalars) - 1

    def program(self):
        for k, t in enumerate(self.inputs):
            shape = t._shape
            if not shape:
                j = self.scalar(0.0)
                off = self.alloc(1)
                self.row(interp.FILL, j, off, dims=(1, 1, 1, 1))
                self.input_slots.append((1, j, 1))
            else:
                n = int(np.prod(shape, dtype=np.int64))
                off = self.extern(n)
                self.input_slots.append((0, off >> interp.EXT, n))
            self.buf[("i", k)] = (off, shape)
        n_inputs = len(self.homes)
        last = self._last_uses() if self.private_from is not None else {}
        dying = {}
        for k, p in enumerate(self.pending):
            off = p.op.lower(self, p)
            self.buf[("n", p.pos)] = (off, p.shape)
            if off >= interp.EXT_ONE and (off >> interp.EXT) <= n_inputs and not p.op.view:
                self.must_copy.add(off >> interp.EXT)  # its value is read from the arena copy
            self.node_slots.append((self.arena_offset(off),
                                    int(np.prod(p.shape, dtype=np.int64))))
            if p.pos in last:
                own = self.owned.get(p.pos)
                if own is None or own[0] != off:
                    self._pin(off)  # it reads another node's buffer: that one lives on
                dying.setdefault(last[p.pos], []).append(p.pos)
            for q in dying.pop(k, ()):
                own = self.owned.pop(q, None)
                if own is not None:
                    self.free.append((own[1], own[0]))
        for p in self.outputs:
            key = ("n", p.pos)
            off, shape = self.operand_key(key)
            if self.private_from is not None and p.pos not in self.out_bufs:
                # a gradient that is a view shares another buffer (an input read where it
                # lives, whose arena home is never written): give it a buffer of its own
                out = self.new_out(p)
                self.elementwise(interp.COPY, 0, out, p.shape, [(off, shape, None)])
                self.buf[key] = (out, p.shape)
                self.node_slots[p.pos] = (self.arena_offset(out), self.node_slots[p.pos][1])
        code = np.array(self.rows, np.int64).reshape(-1, interp.WIDTH)
        table = np.zeros((len(self.homes) + 1, 3), np.int64)
        table[1:, interp.HOME], table[1:, interp.SIZE] = self.homes, self.sizes
        return Program(code, np.array(self.scalars or [0.0]), self.index_specs,
                       max(self.size, 1), self.input_slots, self.node_slots, self.fdtype,
                       table, self.must_copy, self.out_bufs)

    # emitters -------------------------------------------------------------------
    def row(self, op, sub, out, a=0, b=0, c=0, dims=(1, 1, 1, 1), sa=(0,) * 4, sb=(0,) * 4,
            sc=(0,) * 4, flat=0):
        self.rows.append([op, sub, out, a, b, c, *dims, *sa, *sb, *sc, flat])

    def operand(self, u):
        """``u``'s contiguous buffer (offset, shape); a transpose kept as a flag is copied now."""
        return self.operand_key(self.key(u))

    def operand_key(self, key):
        t = self.transposed.pop(key, None)
        if t is not None:
            src_off, src_shape = t
            out = self.alloc(np.prod(src_shape, dtype=np.int64))
            self.copy_view(out, src_shape[::-1], src_off, 0, (1, src_shape[1]))
            self.buf[key] = (out, src_shape[::-1])
            self.node_slots[key[1]] = (out, int(np.prod(src_shape)))
        return self.buf[key]

    def matrix(self, u):
        """``u`` as a matrix operand: (offset, shape, transposed flag)."""
        key = self.key(u)
        t = self.transposed.get(key)
        if t is not None:
            return t[0], t[1][::-1], 1
        off, shape = self.buf[key]
        return off, shape, 0

    def new_out(self, p):
        n = max(int(np.prod(p.shape, dtype=np.int64)), 1)
        if p.pos in self.external:
            ref = self.extern(n)
            self.out_bufs[p.pos] = ref >> interp.EXT
            return ref
        if self.private_from is None or p.pos < self.private_from:
            return self.alloc(n)
        best = None
        for i, (size, off) in enumerate(self.free):
            if size >= n and (best is None or size < self.free[best][0]):
                best = i
        if best is None:
            off = self.alloc(n)
        else:
            size, off = self.free.pop(best)
            if size > n:
                self.free.append((size - n, off + n))
        self.owned[p.pos] = (off, n)
        return off

    def _last_uses(self):
        """Private position -> index (in ``recs``) of the last op reading it; outputs and
        unread nodes die right after they are made, outputs never."""
        keep = {p.pos for p in self.outputs}
        for p in self.outputs:  # a view's value is read through its base: keep that too
            while p.op.view:
                p = p.inputs[0]._lazy
                if p is None or p.seg is not self.seg:
                    break
                keep.add(p.pos)
        last = {}
        for k, p in enumerate(self.pending):
            if p.pos >= self.private_from and p.pos not in keep:
                last[p.pos] = k
            cond = p.attrs.get("cond") if p.attrs else None
            for u in (p.inputs if cond is None else [*p.inputs, cond]):
                q = u._lazy
                if q is not None and q.seg is self.seg and q.pos in last:
                    last[q.pos] = k
        return last

    def _pin(self, off):
        """The private buffer holding ``off`` is shared by a view: never reuse it."""
        for q, (start, n) in list(self.owned.items()):
            if start <= off < start + n:
                del self.owned[q]

    def elementwise(self, op, sub, out, out_shape, operands):
        """out (contiguous, ``out_shape``) = op over operands [(offset, shape or strides)]."""
        strides = [_broadcast_strides(shape, out_shape) if geo is None else geo
                   for (_, shape, geo) in operands]
        n = int(np.prod(out_shape, dtype=np.int64))
        if n == 0:
            return
        dims = cpu._coalesce(out_shape, [tuple(strides_) for strides_ in strides]
                                 + [_c_strides(out_shape)])
        if not dims or (len(dims) == 1 and all(st == 1 for st in dims[0][1])):
            # every operand runs contiguously alongside the output: the 1-D kernels
            self.row(op, sub, out, *[o for o, _, _ in operands], dims=(n, 1, 1, 1), flat=1)
            return
        if (len(dims) == 2 and op == interp.BINARY and len(operands) == 2
                and dims[1][1] == [1, 1, 1] and dims[0][1] == [dims[1][0], 0, dims[1][0]]):
            # a matrix and a row broadcast over it (a bias): one vectorised loop per row
            self.row(op, sub, out, operands[0][0], operands[1][0],
                     dims=(dims[0][0], dims[1][0], 1, 1), flat=interp.ROWS)
            return
        if (len(dims) == 1 and op in (interp.BINARY, interp.COMPARE, interp.WHERE) and dims[0][1][-1] == 1
                and all(st in (0, 1) for st in dims[0][1])):
            # contiguous operands and broadcast scalars: 1-D loops, a scalar read in place
            flat = 1
            for j, st in enumerate(dims[0][1][:-1]):
                if st == 0:
                    flat |= 2 << j
            self.row(op, sub, out, *[o for o, _, _ in operands], dims=(n, 1, 1, 1), flat=flat)
            return
        if len(dims) > 4:
            raise NotImplementedError("more than 4 dims after merging")
        dims = [(1, [0] * (len(strides) + 1))] * (4 - len(dims)) + dims
        shape4 = tuple(d for d, _ in dims)
        geos = [tuple(st[j] for _, st in dims) for j in range(len(strides))]
        while len(geos) < 3:
            geos.append((0,) * 4)
        offs = [o for o, _, _ in operands] + [0] * (3 - len(operands))
        self.row(op, sub, out, *offs, dims=shape4, sa=geos[0], sb=geos[1], sc=geos[2])

    def copy_view(self, out, out_shape, src_off, view_offset, view_strides):
        self.elementwise(interp.COPY, 0, out, out_shape, [(src_off + view_offset, None, view_strides)])

    def reduce(self, code, x_off, shape, dims, p=None):
        """Reduce a contiguous buffer over sorted ``dims``; returns the result's offset (the
        output buffer of node ``p``, if given)."""
        runs = cpu._runs(dims)
        for i, (start, stop) in enumerate(runs):
            a = int(np.prod(shape[:start], dtype=np.int64))
            r = int(np.prod(shape[start:stop], dtype=np.int64))
            b = int(np.prod(shape[stop:], dtype=np.int64))
            out = self.new_out(p) if p is not None and i == len(runs) - 1 else self.alloc(a * b)
            self.row(interp.REDUCE, code, out, x_off, dims=(a, r, b, 1))
            x_off, shape = out, shape[:start] + shape[stop:]
        return x_off

    def constant(self, value):
        off = self.alloc(1)
        self.row(interp.FILL, self.scalar(value), off, dims=(1, 1, 1, 1))
        return off

    def indices(self, kind, shape, n):
        """Reserve ``n`` entries of the index arena for the node being lowered (filled per
        run from its attribute ``key`` or ``idx``); returns their start."""
        start = self.index_len
        self.index_specs.append((len(self.node_slots), kind, shape))
        self.index_len += n
        return start


# --- rules shared by many ops -------------------------------------------------------

def lower_unary(code):
    """The rule of an elementwise unary op with op code ``code``."""
    def lower(lw, p):
        (x,) = p.inputs
        out = lw.new_out(p)
        off, shape = lw.operand(x)
        lw.elementwise(interp.UNARY, code, out, p.shape, [(off, shape, None)])
        return out
    return lower


def lower_binary(code, opcode=interp.BINARY):
    """The rule of an elementwise binary op (or a comparison: ``opcode``) with op code ``code``."""
    def lower(lw, p):
        a, b = p.inputs
        out = lw.new_out(p)
        lw.elementwise(opcode, code, out, p.shape,
                       [(*lw.operand(a), None), (*lw.operand(b), None)])
        return out
    return lower


def lower_copy(lw, p):
    """A contiguous copy of the input."""
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(interp.COPY, 0, out, p.shape, [(*lw.operand(x), None)])
    return out


def lower_view(lw, p):
    """A view op: the input's buffer shared where the view is a contiguous run of it, a
    transpose of a matrix kept as a flag for the matmuls that read it, else a strided copy."""
    (x,) = p.inputs
    if p.op.name == "permute" and p.attrs["dims"] == (1, 0):
        off, shape, flag = lw.matrix(x)
        if not flag:  # a plain transpose: consumers that are matmuls read it as a flag
            lw.transposed[("n", p.pos)] = (off, shape)
            return off
    off, shape = lw.operand(x)
    fake = fake_array(shape, p.dtype if p.dtype in _FLOATS else lw.fdtype)
    v = p.op.forward(fake, **p.attrs)
    v = v[p.index] if isinstance(v, tuple) else v
    item = fake.itemsize
    view_off = (v.__array_interface__["data"][0] - fake.__array_interface__["data"][0]) // item
    strides = tuple(s // item for s in v.strides)
    if strides == _c_strides(v.shape) or v.size <= 1:
        return off + view_off  # the view is a contiguous run of the buffer: share it
    out = lw.new_out(p)
    lw.copy_view(out, p.shape, off, view_off, strides)
    return out
