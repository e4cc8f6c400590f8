"""Cached training steps and gradient homes (an optimizer's gradient arena).

A lazy ``loss.backward()`` on a loss recorded in the current segment is keyed by the
trie node the forward ops led to (which fixes the structure, shapes, dtypes and
autograd flags of everything recorded) and the loss's position. The first time, the
engine traces the VJP rules (recording the backward into the same segment) and forward
and backward are realized as one Program; the entry remembers how that Program's
inputs, index arrays and gradients map onto any later forward with the same key.
Later steps skip the engine and the grad_fns entirely: bind the forward's inputs, run
one native call, hand out gradients.
"""
import itertools
import operator
from sys import getrefcount as _getrefcount
from weakref import ref as _weakref

import numpy as np

from ..autograd.anomaly_mode import _state as _anomaly_state
from ..core.constants import shared_ones as _ones
from ..core.state import _leaf_epoch, _stats
from ..runtime.program import _address
from .. import tensor as _tensor
from .deferred import _keep_live
from .realization import _index_array, _realize_segment
from .recorder import _new_object
from .segment import _tls

_Tensor = _tensor.Tensor
_NONES = itertools.repeat(None)


_accumulate_leaf = None  # the engine's (see set_leaf_accumulator)


def set_leaf_accumulator(accumulate_leaf):
    """Hand gradients to leaves through ``accumulate_leaf(leaf, grad, create_graph, owned=)``:
    the autograd engine's, which sits above this module and registers it when imported."""
    global _accumulate_leaf
    _accumulate_leaf = accumulate_leaf


def train_step(root, seed, retain_graph):
    """Run ``root.backward(seed)`` from a cached Program (returns True), or return a
    recorder that registers this step's Program after the engine has traced it, or None
    when the step is not eligible (hooks, a grad_fn already made, ...)."""
    entry = _cached_step(root, seed)
    if entry is None or entry.__class__ is StepRecorder:
        if _tls.capture is not None:
            _tls.capture.fail("backward ran the autograd engine (a first step, hooks, ...)")
        return entry
    _run_entry(entry, seed, retain_graph)
    return True


def run_cached_step(root, retain_graph):
    """``root.backward()`` (the implicit gradient of a scalar) from a cached Program, if
    this step has one: returns True when it ran, False (having done nothing) otherwise."""
    p = root._lazy
    rec = _tls.rec
    train = rec.node.train
    if train is None or _anomaly_state.__dict__.get("enabled"):
        return False
    if p.shape and _numel(p.shape) != 1:  # no implicit gradient: the engine raises
        return False
    entry = train.get(p.pos)
    if entry is None:
        return False
    hand = entry._hand  # checked for these very inputs, and no hook or home came since:
    if (hand is None or hand.epoch != _leaf_epoch[0] or p.seg is not rec.seg  # eligible
            or rec.seg.materialized or not hand.fits(rec.inputs)):
        if not _eligible(p):
            return False
        hand = None
    seed = entry.seed  # the implicit gradient, 1 (never handed out: made once per entry)
    if seed is None:
        seed = entry.seed = _Tensor._make(_ones(p.shape, p.dtype))  # the engine's array
    _run_entry(entry, seed, retain_graph, hand)
    return True




def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _eligible(p):
    """Whether a backward from pending ``p`` can be a cached step: ``p`` is in the segment
    being recorded, none of whose grad_fns was made, and no input it reads has hooks."""
    rec = _tls.rec
    if p is None or p.seg is not rec.seg or rec.seg.materialized:
        return False
    for t in rec.inputs:
        if t._hooks is not None and t._requires_grad:
            return False
    return True


def _run_entry(entry, seed, retain_graph, hand=None):
    rec = _tls.rec
    _stats["cache_hits"] += 1
    if _tls.capture is not None:
        _tls.capture.train(entry, rec.inputs, rec.seg, seed, retain_graph, rec.pending)
    entry.run(seed, retain_graph, hand)


def _cached_step(root, seed):
    p = root._lazy
    if seed._value is None or not _eligible(p):
        return None
    rec = _tls.rec
    # the root's position says all: the seed has the root's dtype (the engine casts it),
    # which the trie path fixes
    key = p.pos
    node = rec.node
    entry = node.train.get(key) if node.train is not None else None
    if entry is None:
        return StepRecorder(rec.seg, node, key, len(rec.pending), list(rec.inputs), seed)
    return entry


def _has_arrays(obj):
    if isinstance(obj, np.ndarray):
        return True
    return isinstance(obj, tuple) and any(_has_arrays(x) for x in obj)


class StepRecorder:
    """Realizes a traced training step and files it under the forward's trie node."""

    def __init__(self, seg, node, key, n_fwd, fwd_ext, seed):
        self.seg, self.node, self.key = seg, node, key
        self.n_fwd, self.fwd_ext, self.seed = n_fwd, fwd_ext, seed

    def register(self, leaf_grads):
        rec = _tls.rec
        rec.sync()
        seg, recs, ext, slots = rec.seg, rec.pending, rec.inputs, rec.slots
        if (seg is not self.seg or len(ext) < len(self.fwd_ext)
                or any(a is not b for a, b in zip(ext, self.fwd_ext))):
            return  # the forward was realized meanwhile: nothing to cache
        outputs = [g._lazy for _, g in leaf_grads
                   if g._value is None and g._lazy.seg is seg]
        program = _realize_segment(outputs, self.n_fwd)
        if program is None:
            return
        entry = self._entry(program, leaf_grads, seg, recs, ext, slots)
        if entry is not None:
            if self.node.train is None:
                self.node.train = {}
            self.node.train[self.key] = entry

    def _entry(self, program, leaf_grads, seg, recs, ext, slots):
        n_ext = len(self.fwd_ext)
        if any(t._requires_grad and t._grad_fn is not None for t in self.fwd_ext):
            return None  # gradients flow on into an earlier graph: the engine's job
        extra = []
        for t in ext[n_ext:]:
            if t is self.seed:
                extra.append(None)
            else:  # a constant the VJP rules made (a wrapped number, zeros, ...): read-only,
                c = t._data.copy()  # so a 0-d one sits in the Program's scalar table once
                c.flags.writeable = False
                extra.append(c)
        owners = {}
        for k, p in enumerate(recs[:self.n_fwd]):
            for v in p.attrs.values():
                if isinstance(v, (tuple, np.ndarray)):
                    owners[id(v)] = k
        index_specs = []
        for place, kind, shape in program.index_specs:
            if place < self.n_fwd:
                index_specs.append((place, kind, shape, None))
                continue
            seg_attrs = recs[place].attrs
            obj = seg_attrs["key"] if kind == "key" else seg_attrs["idx"]
            if id(obj) in owners:
                index_specs.append((owners[id(obj)], kind, shape, None))
            elif kind == "key" and not _has_arrays(obj):
                index_specs.append((None, kind, shape, _index_array(seg_attrs, kind, shape)))
            else:
                return None  # positions that change per step but come from no forward op
        grads = []
        for leaf, g in leaf_grads:
            slot = slots.get(id(leaf))
            if slot is None or slot >= n_ext:
                return None
            q = g._lazy
            if g._value is None and q.seg is seg:
                source = ("n", q.pos)
            elif g is self.seed:
                source = ("seed", None)
            elif slots.get(id(g), n_ext) < n_ext:
                source = ("fwd", slots[id(g)])
            else:
                source = ("const", g._data.copy())
            grads.append((slot, int(np.prod(leaf._shape, dtype=np.int64)), source))
        return CachedStep(program, extra, index_specs, grads, self.key)


class CachedStep:
    def __init__(self, program, extra, index_specs, grads, root_pos):
        self.program, self.extra, self.index_specs, self.grads = program, extra, index_specs, grads
        self.root_pos = root_pos  # where the loss is among the forward's ops
        # per index spec: the earlier spec reading the same array (a forward index and the
        # backward's scatter), whose array it reuses, or None
        first = {}
        self.index_same = [first.setdefault((place, kind), j) if const is None else j
                           for j, (place, kind, shape, const) in enumerate(index_specs)]
        self.other_grads = [(k, kind, src) for k, _, (kind, src) in grads if kind != "n"]
        self._hand = None  # how the gradients of the last run's inputs are handed out
        self.seed = None  # run_cached_step's seed tensor

    def run(self, seed, retain_graph, hand=None):
        rec = _tls.rec
        recs, ext, seg, node_deferred = rec.pending, rec.inputs, rec.seg, rec.node.deferred
        rec.reset()
        seg.program, seg.arena = self.run_bound(ext, recs, seed, retain_graph, hand=hand)
        if not retain_graph:
            seg.released = True
            seg.root = _weakref(recs[self.root_pos])
            self.program._seg = _weakref(seg)
        elif node_deferred:
            _keep_live(rec, seg, recs)

    def run_bound(self, ext, recs, seed, retain_graph, indices=None, hand=None):
        """Run on the forward's inputs ``ext`` and index arrays (``indices``, or made from
        the ops ``recs``), hand the gradients to the leaves; returns ``(program, arena)``.
        ``hand``: this entry's ``GradHandout``, when the caller found it current for ``ext``.

        When every computed gradient's leaf has an optimizer home in one gradient arena
        and no gradient yet (after ``zero_grad()``) nor hooks, the Program writes the
        gradients there itself; otherwise they are handed out from its arena."""
        seed_value = seed._value
        values = list(map(_VALUE, ext))
        if any(map(operator.is_, values, _NONES)):  # an input of an earlier segment
            _tls.quiet += 1
            try:
                values = [t._data for t in ext]
            finally:
                _tls.quiet -= 1
        for v in self.extra:
            values.append(seed_value if v is None else v)
        if indices is None:
            indices = []
            for (place, kind, shape, const), j in zip(self.index_specs, self.index_same):
                indices.append(indices[j] if j < len(indices) else (
                    _index_array(recs[place].attrs, kind, shape) if const is None else const))
        if hand is None:  # (it keeps no arena views: the arena is reused when unreferenced)
            hand = self._hand
            if hand is None or hand.epoch != _leaf_epoch[0] or not hand.fits(ext):
                hand = self._hand = GradHandout(self, ext)
        homes = hand.homes  # (the leaves have no hooks, and these homes: see GradHandout)
        program = self.program
        if homes is not None:  # the gradient tensors, before the Program writes the homes
            # (home_grad inline: the tensor given last time, taken again as it is)
            for k, (leaf, home) in enumerate(hand.homed):
                if leaf._grad is not None:  # a gradient already: accumulate into it
                    for leaf, _ in hand.homed[:k]:
                        leaf._grad = None
                    homes = None
                    break
                g = leaf.__dict__.get("_home_grad")
                if (g is None or _getrefcount(g) > 3 or g._value is not home or g._vc[0]
                        or g._requires_grad or g._lazy is not None or g.__weakref__ is not None
                        or (g.__dict__ and g.__dict__.keys() != _BK_ONLY)):
                    g = None  # (home_grad counts the references to it)
                    g = home_grad(leaf, home)
                leaf._grad = g
        try:
            arena = program.execute(values, indices, homes)
        except BaseException:
            if homes is not None:  # no gradient came
                for leaf in hand.leaves:
                    leaf._grad = None
            raise
        if homes is None:  # (into an optimizer's home, if the leaf has one and no gradient yet)
            for leaf, off, n in hand.computed:
                _accumulate_leaf(leaf, _Tensor._make(arena[off:off + n].reshape(leaf._shape)),
                                 False, owned=True)
        for k, kind, src in self.other_grads:
            g = seed_value if kind == "seed" else (ext[src]._data if kind == "fwd" else src)
            _accumulate_leaf(ext[k], _Tensor._make(g), False)  # copied: not our array
        return program, arena


class GradHandout:
    """Where a training step's gradients go for one list of inputs ``ext``: ``computed``,
    per gradient the Program computes, (leaf, arena offset, size); ``homed`` and ``homes``
    (for ``Program.execute``), set when all those leaves have homes the Program can write
    into (writable, contiguous, aligned, of its dtype) and no hooks. Valid while no tensor
    gains a hook or a home (``_leaf_epoch``) and the inputs that require grad are the same
    tensors (``fits``; the others, a new batch each step, have no gradient or hooks, and
    the trie key says which require grad): a run then only checks that the leaves have
    no gradient yet."""

    def __init__(self, entry, ext):
        self.watch = [k for k, t in enumerate(ext) if t._requires_grad]
        self.watched = [ext[k] for k in self.watch]
        self.pick = (operator.itemgetter(*self.watch) if len(self.watch) > 1
                     else lambda ext, w=tuple(self.watch): [ext[k] for k in w])
        self.epoch = _leaf_epoch[0]
        program = entry.program
        self.computed, self.homed, self.homes = [], [], []
        for k, n, (kind, src) in entry.grads:
            if kind != "n":
                continue
            leaf = ext[k]
            home = leaf.__dict__.get("_grad_home")
            self.computed.append((leaf, program.node_slots[src][0], n))
            buf = program.out_bufs.get(src)
            if (self.homes is not None and buf is not None and home is not None
                    and leaf._hooks is None
                    and home.flags.writeable and home.flags.c_contiguous and home.flags.aligned
                    and home.dtype == program.fdtype and home.size == n and n):
                self.homes.append((buf, _address(home)))
                self.homed.append((leaf, home))
            else:
                self.homes = None
        if not self.homes:
            self.homes = None
        self.leaves = [leaf for leaf, _ in self.homed]

    def fits(self, ext):
        """Whether ``ext`` has this hand's tensors where inputs require grad."""
        return all(map(operator.is_, self.watched, self.pick(ext)))


def home_grad(leaf, home):
    """The gradient tensor to give ``leaf`` over ``home`` (its place in an optimizer's
    gradient arena), which is about to be written: the one given last time if nothing
    else holds it and it is as it was made (no one can tell it from a new one), else a
    new one (see ``release_home``)."""
    d = leaf.__dict__
    g = d.get("_home_grad")
    if g is not None:
        if _getrefcount(g) <= 3:  # the leaf's, ours and the call's: no one else holds it
            if (g._value is home and not g._vc[0] and not g._requires_grad
                    and g._lazy is None and g.__weakref__ is None
                    and (not g.__dict__ or g.__dict__.keys() == _BK_ONLY)):
                return g
        else:
            release_home(leaf, home)
    g = d["_home_grad"] = _new_object(_Tensor)  # Tensor._make(home), inline
    g._value, g._lazy, g._vc, g._requires_grad, g._grad_fn = home, None, [0], False, None
    return g


def release_home(leaf, home):
    """Before ``home`` is written with a gradient given otherwise: the tensor given over it
    last, if still held elsewhere, moves its values to memory of its own (unless views
    share its memory), so a gradient kept from an earlier step keeps its values, as in
    PyTorch, where each backward after ``zero_grad()`` makes a new one."""
    g = leaf.__dict__.pop("_home_grad", None)
    if g is not None and g._value is home and "_views" not in g.__dict__ \
            and _getrefcount(g) > 2:  # (ours and the call's)
        g._value = home.copy()


_BK_ONLY = {"_bk": None}.keys()  # (a gradient's cached input key may stay: see _bind_key)


_VALUE = operator.attrgetter("_value")
