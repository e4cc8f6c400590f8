"""Idle arenas kept for reuse by their Programs, within one budget for the process."""
import collections
from weakref import ref as _weakref

ARENA_BYTES = 256 << 20  # idle arenas kept for reuse by their Programs, in all, at most

_KEPT = collections.deque()  # (Program, its arena's id, bytes), oldest first
_kept_bytes = [0]


def _kept(program, arena):
    """Count ``arena`` as kept by ``program`` for its next run; past ``ARENA_BYTES`` in
    all, the Programs that made theirs longest ago let theirs go (a step whose structure
    changes every time, lengths of a sequence, would keep one per structure otherwise;
    a Program in use makes a new one when it runs next)."""
    _KEPT.append((_weakref(program), id(arena), arena.nbytes))
    _kept_bytes[0] += arena.nbytes
    while (_kept_bytes[0] > ARENA_BYTES or len(_KEPT) > 4096) and len(_KEPT) > 1:
        # (a count too: tiny arenas made anew each run, their values kept, would let
        # the bookkeeping itself grow)
        ref, key, nbytes = _KEPT.popleft()
        _kept_bytes[0] -= nbytes
        old = ref()
        if old is not None and id(old._last) == key:
            old._last = None
