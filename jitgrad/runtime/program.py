"""A Program: instruction rows over one arena, run by the native interpreter in one call,
and how it takes in one list of input arrays (``InputPlan``)."""
import operator
import sys

import numpy as np

from ..core.state import _stats
from ..kernels.cpu import interpreter as interp
from .arenas import _kept

_new_object = object.__new__


class Program:
    """Instructions over one arena, plus where each input and node lives in it.

    ``index_specs`` say how to fill the index arena per run: ``(place, kind,
    shape)`` reads attribute ``key`` (flat positions of that index over
    ``shape``) or ``idx`` of the node at ``place`` in the realized order.

    Inputs (and a training step's gradients, ``out_bufs``: position -> buffer) are
    external buffers, numbered from 1: ``table`` (one row per buffer: address, arena
    offset, size; see the interpreter) places each in the arena by default. A run
    reads contiguous inputs of the Program's dtype where they live and copies the
    others in, as it does the ``must_copy`` ones (a node's value is read from the
    copy); a training step may have its gradients written straight into the
    optimizer's gradient arena (``homes``). ``node_slots`` are arena offsets.
    """

    def __init__(self, code, scalars, index_specs, arena_size, input_slots, node_slots,
                 fdtype, table, must_copy, out_bufs):
        self.code, self.scalars = code, scalars
        self.index_specs = index_specs
        self.arena_size, self.input_slots, self.node_slots = arena_size, input_slots, node_slots
        self.fdtype = fdtype
        self.table, self.must_copy, self.out_bufs = table, must_copy, out_bufs
        self._last = None
        self._plan = None
        self._seg = _dead  # the replayed step that last ran it (see Segment.give_back)

    def execute(self, values, indices, homes=None):
        """Run on input arrays ``values`` and index arrays; returns the arena. ``homes``:
        ``[(buffer, address)]`` places gradient buffers (the caller keeps that memory).

        The last run's arena is reused when nothing references it any more (its
        values were views, now dropped): a fresh large allocation each step would
        pay the kernel's page faults again.
        """
        arena = self._last
        if (arena is not None and arena.nbytes >= _GIVE_BACK  # (a small one is remade
                and sys.getrefcount(arena) == 4):  # faster) ours, the local, the call's,
            seg = self._seg()  # and one more: the last step's segment's?
            if seg is not None and seg.arena is arena:
                seg.give_back()
        if arena is None or sys.getrefcount(arena) > 3:  # ours, the local, the call
            arena = np.empty(self.arena_size, self.fdtype)
            self._last = arena
            _kept(self, arena)
        plan = self._plan
        if plan is None or len(plan.values) != len(values):
            plan = self._plan = InputPlan(self, values)
        elif not all(map(operator.is_, plan.values, values)):
            plan = self._plan = plan.updated(values)
        scalars = plan.table  # read-only 0-d inputs (shared constants) are in it already
        if plan.scalar_inputs:  # other 0-d inputs: their values go through the scalar table
            scalars = scalars.copy()
            for k, v in plan.scalar_inputs.values():
                scalars[k] = v.item()
        for dst, n, src in plan.copies.values() if plan.copies else ():
            if src.ndim == 1:
                arena[dst:dst + n] = src
            else:  # a strided input: copied from its memory as it is now
                arena[dst:dst + n].reshape(src.shape)[...] = src
        table = plan.where
        if homes is not None:
            if plan.homes is not homes:
                plan.homes, plan.homed = homes, plan.where.copy()
                for buf, address in homes:
                    plan.homed[buf, interp.ADDRESS] = address
            table = plan.homed
        interp.interpret(self.code, scalars, np.concatenate(indices) if indices else _NO_INDICES,
                    arena, table)
        _stats["programs"] += 1
        _stats["instructions"] += len(self.code)
        return arena

    def value(self, arena, k, p):
        """Node ``k``'s value: an arena view (or, for view ops, a view of its input)."""
        if p.shares:  # a view of its input's memory (a view op's copy, advanced indexing or
            # a reshape no view can make, is in the arena, as it was when the Program ran)
            # a view of a view of ...: the values under it first, from the bottom up (asking
            # each for its input would nest one call per view)
            chain, q = [], p.inputs[0]._lazy
            while q is not None and q._v is None and q.seg is p.seg and q.shares:
                chain.append(q)
                q = q.inputs[0]._lazy
            for q in reversed(chain):
                q.value  # noqa: B018  (computes and keeps it)
            value = p.op.forward(p.inputs[0]._data, **p.attrs)
            return value[p.index] if isinstance(value, tuple) else value
        off, n = self.node_slots[k]
        value = arena[off:off + n].reshape(p.shape)
        d = p.dtype
        if d is not self.fdtype and d != self.fdtype:
            return value.astype(d)
        # a small value is copied out: kept (a loss in a list), a view would keep the
        # whole arena from going back to the Program
        return value.copy() if n <= 4096 else value


def _dead():
    return None


_GIVE_BACK = 1 << 16  # bytes: an arena this large is worth finding a kept step's values


class InputPlan:
    """How a Program takes in one list of input arrays: kept while the same array
    objects come back (parameters, a fixed batch), whose memory stays where it is; a
    new array (a new batch each step) is placed again alone (``updated``).

    ``where``: the buffer table, with the address of each input read where it lives
    (contiguous, aligned, of the Program's dtype, not ``must_copy``; ``values`` keeps
    it alive);
    ``copies``: input position -> ``(arena offset, n, source)`` for the others (the
    source flat, or the strided array itself); ``scalar_inputs``: input position ->
    ``(scalar slot, array)`` for the writable 0-d inputs; ``table``: the scalar table
    with the read-only 0-d inputs (shared constants) filled in."""

    def __init__(self, program, values):
        self.program = program
        self.values = list(values)
        self.homes = self.homed = None
        self.copies, self.scalar_inputs = {}, {}
        self.table = program.scalars.copy()
        self.where = program.table.copy()
        for k, v in enumerate(values):
            self._place(k, v)

    def _place(self, k, v):
        program = self.program
        kind, buf, n = program.input_slots[k]
        if kind == 1:
            if v.flags.writeable or v.base is not None:
                self.scalar_inputs[k] = (buf, v)
            else:  # owns read-only memory (a wrapped Python number): never changes
                self.table[buf] = v.item()
        else:
            flags = v.flags
            if (v.dtype == program.fdtype and flags.c_contiguous and flags.aligned and v.size
                    and buf not in program.must_copy):
                address = _address(v)
            else:  # (a view of a strided array's memory: reshape(-1) would copy it now)
                address = program.table[buf, interp.ADDRESS]  # its place in the arena
                self.copies[k] = (self.where[buf, interp.HOME], n,
                                  v.reshape(-1) if flags.c_contiguous else v)
            self.where[buf, interp.ADDRESS] = address
            if self.homed is not None:  # (a copy of ``where``)
                self.homed[buf, interp.ADDRESS] = address

    def updated(self, values):
        """The plan for ``values``, where only the arrays that changed are placed again.
        A new plan: another thread may be running this Program on this one."""
        new = _new_object(InputPlan)
        new.program, new.values, new.homes = self.program, list(values), self.homes
        new.homed = self.homed.copy() if self.homed is not None else None
        new.copies, new.scalar_inputs = dict(self.copies), dict(self.scalar_inputs)
        new.table, new.where = self.table, self.where.copy()
        for k, same in enumerate(map(operator.is_, self.values, values)):
            if not same:
                new.copies.pop(k, None)
                new.scalar_inputs.pop(k, None)
                if new.table is self.table and self.program.input_slots[k][0] == 1:
                    new.table = self.table.copy()
                new._place(k, values[k])
        return new


_address = interp.address


_NO_INDICES = np.zeros(1, np.int64)
