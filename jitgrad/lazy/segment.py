"""The data the recorder builds: ``Segment`` (one recorded run of ops), ``Pending`` (one
recorded output), ``SegmentRecorder`` (the segment a thread is recording) and the per-thread
state that holds it."""
import sys
import threading

from ..autograd.grad_mode import _state as _grad_state
from . import trie as _trie


class Segment:
    """One recorded run of ops, realized as a whole by one Program.

    Ops append to the current segment until a value is needed; then the whole
    segment runs (one native call) and recording starts a new one. A realized
    segment keeps its Program and arena: each output's value is a view taken
    when first asked for. ``released``: a backward pass without
    ``retain_graph`` freed the saved tensors of its (not yet made) grad_fns;
    ``materialized``: some of its grad_fns were made (hooks may sit on them).
    """

    __slots__ = ("program", "arena", "released", "materialized", "owner", "root",
                 "__weakref__")

    def __init__(self, owner):
        self.owner = owner  # the SegmentRecorder that records into it
        self.program = self.arena = None
        self.released = self.materialized = False
        self.root = None  # a replayed step's loss, weakly (see give_back)

    def give_back(self):
        """Let the last replayed step's arena go back to its Program when what keeps it is
        that step's loss (kept in a list) and the nodes it was made from: the values a
        tensor held from outside can still ask for are copied out first. Done only when
        those nodes are all the segment's live ones (each holds the segment), so no other
        node can ask for a value later; otherwise the Program makes a new arena. Only
        the thread that recorded it does this (another may be reading its values)."""
        if self.owner is not _tls.rec:
            return
        root = self.root() if self.root is not None else None
        if root is None:
            return
        found, stack, inner = {id(root): root}, [root], {}
        while stack:
            p = stack.pop()
            for t in p.inputs:
                q = t._lazy if t._lazy is not None else t._grad_fn
                if q is None or q.__class__ is not Pending or q.seg is not self:
                    continue
                entry = inner.get(id(t))
                if entry is None:
                    inner[id(t)] = [t, 1]
                else:
                    entry[1] += 1
                if id(q) not in found:
                    found[id(q)] = q
                    stack.append(q)
        if sys.getrefcount(self) != len(found) + 3:  # (its live nodes', ours, the caller's,
            return  # the call's): a node not found lives too
        outside = {id(root)}
        for t, n in inner.values():  # a tensor held by more than the ops that read it
            if sys.getrefcount(t) > n + 3:  # (the inputs lists, the entry, the loop, the call)
                outside.add(id(t._lazy if t._lazy is not None else t._grad_fn))
        held = [found[key] for key in outside]
        if any(p.shares for p in held):  # read through its base: the arena stays
            return
        for p in held:
            if p._v is None:
                p._v = self.program.value(self.arena, p.pos, p).copy()
        self.arena = None


class Pending:
    """One output of one recorded op: how to compute it, and where its value will be.

    ``pos`` numbers the outputs of its segment in recording order. ``view`` is,
    for view ops, ``(layout, shares)``: an array over no memory with the strides
    the realized view will have, and whether it aliases its input. ``grad`` is,
    for an op whose grad_fn is deferred, the node's class name; ``node`` the node
    once made; ``vc`` the output's version counter (for a saved output).
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "seg", "pos", "grad", "vc",
                 "__weakref__", "__dict__")
    # set on few Pendings, or later: kept in the instance dict when set, so that making
    # the many others (one per recorded op) costs less
    index = 0
    view = None
    _v = None
    node = None

    def __init__(self, op, inputs, attrs, index, shape, dtype, seg, pos):
        self.op, self.inputs, self.attrs = op, inputs, attrs
        self.shape, self.dtype, self.seg, self.pos = shape, dtype, seg, pos
        self.grad = self.vc = None
        if index:
            self.index = index

    @property
    def layout(self):
        return None if self.view is None else self.view[0]

    @property
    def shares(self):
        return self.view is not None and self.view[1]

    @property
    def value(self):
        """The computed array, or None while its segment has not run."""
        v = self._v
        if v is None:
            seg = self.seg
            if seg.program is not None:
                v = self._v = seg.program.value(seg.arena, self.pos, self)
        return v


class SegmentRecorder:
    """The segment being recorded: its outputs (``pending``), the realized tensors it reads
    (``inputs``: each bound once, by first use; ``slots``: id -> place, for
    ``inputs[:bound]``) and its place in the trie.

    ``guess`` is the last segment's ``inputs``: a loop's next segment binds the same
    tensors in the same places (the parameters; a new batch each step). An operand that
    is the tensor the guess has at the next place is bound there with no lookup: the
    guess holds each tensor once, so it can only be bound already at a place where the
    segment bound another tensor than the guess's (``strays``: their ids)."""

    __slots__ = ("seg", "pending", "inputs", "slots", "node", "grad", "live", "bound", "guess",
                 "strays")

    def __init__(self):
        self.grad = _grad_state.enabled  # this thread's grad mode, kept current by _set
        self.live = []  # weakrefs: (segment, its deferred outputs) realized, nodes not made
        self.inputs = self.guess = []
        self.reset()

    def reset(self):
        if self.inputs:
            self.guess = self.inputs
        self.seg, self.pending, self.inputs, self.slots, self.node = Segment(self), [], [], {}, _trie._ROOT
        self.bound, self.strays = 0, set()

    def sync(self):
        """Put the inputs the hot path bound into ``slots`` (before anything reads it)."""
        slots, ext = self.slots, self.inputs
        for k in range(self.bound, len(ext)):
            slots[id(ext[k])] = k
        self.bound = len(ext)


class PerThread(threading.local):
    """What each thread records into: its segment, and the jitgrad.jit capture watching
    it (``quiet`` > 0 while the runtime itself, not the user, reads values)."""

    def __init__(self):
        self.rec = SegmentRecorder()
        self.capture = None
        self.quiet = 0


_tls = PerThread()
