"""``jitgrad.jit``: capture a step's native work once, then replay it without its Python.

In lazy mode a training step already runs as a few native calls (one Program for
forward and backward, one fused optimizer kernel), but its ops are still
recorded one by one in Python every step. ``jit(fn)`` watches ``fn`` run: while it
runs, the runtime logs every effect it has — Programs run (with where each input
comes from), optimizer ``zero_grad()``/``step()``, ``p.grad = None``,
learning-rate scheduler steps, ``.item()`` reads — and anything it cannot replay
(the autograd engine running, a Program lowered for the first time, an eager op,
an in-place write, a value read that is not returned, index arrays built in
Python, ...) marks the run as not replayable. When two consecutive runs with the
same guard (the arguments' shapes, dtypes and autograd flags, grad mode) log the
same effects on the same objects, later calls replay those effects directly: no
op is recorded, no Python of ``fn`` runs.

Guards are rechecked on every replay: a tensor that ``fn`` reads from outside
(a parameter, a captured batch) must still be the same object with the same
shape, dtype and autograd flags, and no ``nn.Module`` attribute may have
changed since the capture (a replaced parameter, ``module.scale = 3.0``), or
the call runs ``fn`` again and re-captures.

As with ``torch.compile`` and ``jax.jit``, a replay does not run ``fn``'s own
Python: side effects outside jitgrad (appending to a list, printing, counters)
happen only on the calls that run ``fn``, and Python control flow inside ``fn``
must not depend on tensor values. Values ``fn`` returns may be ``.item()``
results, ``None``, and tuples or lists of them; a function returning anything
else simply runs every time in plain lazy mode.
"""
import functools
import warnings

import numpy as np

from . import lazy as _lazy
from .autograd.grad_mode import is_grad_enabled
from .core.constants import shared_ones
from .kernels.cpu.index import class_positions as _class_positions
from .tensor import Tensor

_MAX_TRIES = 4  # runs captured per guard before giving up on replay


class NotReplayable(Exception):
    """Raised inside a replay when a guard fails (the caller runs ``fn`` instead)."""


class Capture:
    """The effects one run of a jitted function had, in order."""

    def __init__(self, args):
        self.epoch = _lazy._module_epoch[0]
        self.events = []
        self.valid = True
        self.why = None
        self.args = {id(a): i for i, a in enumerate(args) if isinstance(a, Tensor)}
        self.segments = {}  # id(Segment) -> index of the event that computed it
        self.reads = {}     # id(float from .item()) -> index of its event
        self.keep = []      # objects whose ids are used above

    def fail(self, why):
        if self.valid:
            self.valid, self.why = False, why

    # --- what the runtime reports ----------------------------------------------------
    def source(self, t):
        """Where a Program input comes from on replay."""
        i = self.args.get(id(t))
        if i is not None:
            return ("arg", i)
        p = t._lazy
        if t._value is None and p is not None:
            k = self.segments.get(id(p.seg))
            if k is not None:
                ev = self.events[k]
                program = ev[1] if ev[0] == "program" else ev[1].program
                if p.op.view or p.dtype != program.fdtype:
                    self.fail("a Program reads a view made by an earlier Program")
                return ("out", k, p.pos, p.shape)
        if t._bk is None:  # read only through attributes so far (class labels)
            _lazy.recorder._bind_key(t)
        return ("obj", t, t._bk)

    def program(self, program, ext, seg, recs):
        indices = [self.index(recs, place, kind) for place, kind, _ in program.index_specs]
        self.segments[id(seg)] = len(self.events)
        self.keep.append(seg)
        self.events.append(("program", program, [self.source(t) for t in ext], indices))

    def index(self, recs, place, kind):
        """How a replay rebuilds the index array the op at ``place`` reads."""
        rows = recs[place].attrs.get("rows") if kind == "idx" else None
        if rows is None:
            self.fail("index arrays are built in Python every step")
            return None
        labels, classes = rows
        return ("rows", self.source(labels), classes, labels._shape)

    def train(self, entry, ext, seg, seed, retain_graph, recs):
        indices = [("const", const) if const is not None else self.index(recs, place, kind)
                   for place, kind, _, const in entry.index_specs]
        v = seed._value
        if v.flags.writeable or not np.all(v == 1):
            self.fail("an explicit backward gradient")
        self.segments[id(seg)] = len(self.events)
        self.keep.append(seg)
        self.events.append(("train", entry, [self.source(t) for t in ext],
                            (v.shape, v.dtype), bool(retain_graph), indices))

    def item(self, p, value):
        """``.item()`` gave ``value`` from pending output ``p`` (None: a realized tensor)."""
        k = self.segments.get(id(p.seg)) if p is not None else None
        if k is None or p.op.view:
            self.fail("a value read that no captured Program made")
            return
        self.reads[id(value)] = len(self.events)
        self.keep.append(value)
        self.events.append(("item", k, p.pos, p.shape, p.dtype))

    def call(self, kind, obj, *args):
        self.events.append((kind, obj, *args))

    # --- after the run ---------------------------------------------------------------
    def result_plan(self, result):
        """How to rebuild ``result`` from replayed reads, or None."""
        if result is None:
            return ("none",)
        if type(result) is float and id(result) in self.reads:
            return ("read", self.reads[id(result)])
        if type(result) in (tuple, list):
            parts = [self.result_plan(r) for r in result]
            if all(p is not None for p in parts):
                return (type(result), parts)
        return None

    def same_as(self, other):
        if self.epoch != other.epoch or len(self.events) != len(other.events):
            return False
        for a, b in zip(self.events, other.events):
            if a[0] != b[0] or len(a) != len(b):
                return False
            for x, y in zip(a[1:], b[1:]):
                if not _same(x, y):
                    return False
        return True


def _same(x, y):
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(map(_same, x, y))
    if isinstance(x, tuple):
        return isinstance(y, tuple) and len(x) == len(y) and all(map(_same, x, y))
    if isinstance(x, (Tensor, _lazy.Program, _lazy.CachedStep)) or hasattr(x, "param_groups") \
            or hasattr(x, "last_epoch"):
        return x is y
    if isinstance(x, np.dtype):
        return x == y
    return type(x) is type(y) and x == y


class Trace:
    """A captured run, replayed."""

    def __init__(self, capture, plan):
        self.events, self.plan, self.epoch = capture.events, plan, capture.epoch
        # each training step's implicit gradient, 1 (read only, never handed out: made once)
        self.seeds = {k: _ones(*ev[3]) for k, ev in enumerate(self.events) if ev[0] == "train"}

    def replay(self, args):
        if _lazy._module_epoch[0] != self.epoch:
            raise NotReplayable  # a module attribute changed: the function may read it
        # first every guard and index array, so that a failed guard leaves nothing half done
        bound = [_prepare(ev, args) for ev in self.events]
        done = []  # per event: (program, arena) or a read value
        for k, (ev, prepared) in enumerate(zip(self.events, bound)):
            kind = ev[0]
            if kind == "train":
                _, entry, sources, _, retain, _ = ev
                ext = [t if t is not None else _resolve(s, args, done)
                       for s, t in zip(sources, prepared[0])]
                done.append(entry.run_bound(ext, None, self.seeds[k], retain, prepared[1]))
            elif kind == "program":
                _, program, sources, _ = ev
                values = [(t if t is not None else _resolve(s, args, done))._data
                          for s, t in zip(sources, prepared[0])]
                done.append((program, program.execute(values, prepared[1])))
            elif kind == "item":
                _, k, pos, shape, dtype = ev
                program, arena = done[k]
                off = program.node_slots[pos][0]
                done.append(dtype.type(arena[off]).item())
            elif kind == "zero_grad":
                ev[1].zero_grad(ev[2])
                done.append(None)
            elif kind in ("step", "sched"):
                ev[1].step()
                done.append(None)
            elif kind == "set_grad":
                ev[1]._grad = None
                done.append(None)
        _lazy._stats["replays"] += 1
        return _rebuild(self.plan, done)


def _prepare(ev, args):
    """The tensors an event reads from outside the trace (None for earlier events'
    outputs) and its index arrays, checking every guard; raises NotReplayable."""
    if ev[0] not in ("train", "program"):
        return None
    tensors = [None if s[0] == "out" else _resolve(s, args, None) for s in ev[2]]
    if ev[0] == "train":
        for t in tensors:
            if t is not None and t._hooks is not None and t._requires_grad:
                raise NotReplayable
    indices = []
    for spec in (ev[5] if ev[0] == "train" else ev[3]):
        if spec[0] == "const":
            indices.append(spec[1])
            continue
        _, source, classes, shape = spec
        labels = _resolve(source, args, None)
        v = labels._data
        if v.dtype != np.int64 or v.shape != shape:
            raise NotReplayable  # the function itself raises the right error
        positions = _class_positions(np.ascontiguousarray(v.reshape(-1)), classes)
        if positions.shape[0] != v.size:
            raise NotReplayable  # a label out of range: so does the function
        indices.append(positions)
    return tensors, indices


def _ones(shape, dtype):
    return Tensor._make(shared_ones(shape, dtype))


def _resolve(source, args, done):
    kind = source[0]
    if kind == "arg":
        return args[source[1]]
    if kind == "out":
        _, k, pos, shape = source
        program, arena = done[k]
        off, n = program.node_slots[pos]
        return Tensor._make(arena[off:off + n].reshape(shape))
    t, key = source[1], source[2]
    if t._bk is not key:  # new data, shape or autograd flags since capture
        raise NotReplayable
    return t


def _reads(plan):
    if plan[0] == "read":
        return {plan[1]}
    if plan[0] == "none":
        return set()
    return set().union(*[_reads(p) for p in plan[1]])


def _rebuild(plan, done):
    if plan[0] == "none":
        return None
    if plan[0] == "read":
        return done[plan[1]]
    kind, parts = plan
    return kind(_rebuild(p, done) for p in parts)


def _guard(args):
    key = [is_grad_enabled()]
    for a in args:
        if isinstance(a, Tensor):
            key.append((type(a), a._shape, a._npdtype, a._requires_grad, a._grad_fn is None))
        elif a is None or isinstance(a, (bool, int, float, str)):
            key.append((type(a), a))
        else:
            return None
    return tuple(key)


class Jitted:
    """``fn`` with capture and replay (see the module docstring)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.traces = {}    # guard -> Trace
        self.captures = {}  # guard -> the last replayable Capture
        self.tries = {}     # guard -> runs captured so far
        self.reasons = {}   # guard -> why the last captured run was not replayable

    def __call__(self, *args, **kwargs):
        if kwargs or not _lazy._STATE["lazy"] or _lazy._tls.capture is not None:
            return self.fn(*args, **kwargs)
        key = _guard(args)
        if key is None:
            return self.fn(*args)
        trace = self.traces.get(key)
        if trace is not None:
            _lazy.flush()
            try:
                return trace.replay(args)
            except NotReplayable:
                # a guard failed before anything ran: capture afresh
                del self.traces[key]
                self.tries[key] = 0
        tries = self.tries.get(key, 0)
        if tries >= _MAX_TRIES:
            return self.fn(*args)
        self.tries[key] = tries + 1
        _lazy.flush()
        capture = Capture(args)
        _lazy._tls.capture = capture
        try:
            result = self.fn(*args)
            _lazy.flush()
        finally:
            _lazy._tls.capture = None
        plan = capture.result_plan(result) if capture.valid else None
        if plan is not None and _reads(plan) != {k for k in capture.reads.values()}:
            plan = None
            capture.fail("an .item() value was read but not returned (it may steer the "
                         "function's Python)")
        if plan is None:
            capture.fail(capture.why or "returns something other than .item() values")
            self.captures.pop(key, None)
            self.reasons[key] = capture.why
            return result
        previous = self.captures.get(key)
        if previous is not None and previous.same_as(capture):
            self.traces[key] = Trace(capture, plan)
            del self.captures[key]
            self.reasons.pop(key, None)
        else:
            if previous is not None:
                self.reasons[key] = ("two runs had different effects (a tensor made anew "
                                     "every run, such as a dropout mask, is read)")
            self.captures[key] = capture
        return result

    def why_not(self):
        """Why the last captured run of each guard was not replayable (for debugging)."""
        return dict(self.reasons)


def jit(fn):
    """Replay ``fn``'s native work (Programs, optimizer steps, ``.item()`` reads) without
    running its Python once two runs show the same effects; see ``jitgrad.jit``'s module
    documentation for what is captured and the guards that keep a replay honest."""
    return Jitted(fn)


_TORCHSCRIPT = ("jitgrad does not compile TorchScript: jitgrad.jit.{} returns the module "
                "as is (jitgrad.jit(step) captures and replays a training step instead)")
_warned = set()


def _as_is(kind, obj):
    if kind not in _warned:  # once per process, as a script calls these once per model
        _warned.add(kind)
        warnings.warn(_TORCHSCRIPT.format(kind), UserWarning, stacklevel=3)
    return obj


def script(obj, optimize=None, _frames_up=0, _rcb=None, example_inputs=None):
    """``torch.jit.script``'s place: returns ``obj`` (a module or function) unchanged, with a
    one-time ``UserWarning``; jitgrad has no TorchScript compiler."""
    return _as_is("script", obj)


def trace(func, example_inputs=None, optimize=None, check_trace=True, check_inputs=None,
          check_tolerance=1e-5, strict=True, **kwargs):
    """``torch.jit.trace``'s place: returns ``func`` (a module or function) unchanged, with a
    one-time ``UserWarning``; jitgrad has no TorchScript tracer."""
    return _as_is("trace", func)


jit.script, jit.trace = script, trace  # jg.jit is this module's decorator function
