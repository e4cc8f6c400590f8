"""The public face of lazy mode: the mode switch and the runtime's statistics."""
from ..core.state import _STATE, _stats
from . import trie as _trie
from .realization import flush


def set_mode(mode):
    """``"lazy"``: ops record and run as native Programs; ``"eager"``: each op runs at once."""
    if mode not in ("eager", "lazy"):
        raise ValueError(f"mode must be 'eager' or 'lazy', got {mode!r}")
    if mode == "eager":
        flush()
    _STATE["lazy"] = mode == "lazy"


def get_mode():
    return "lazy" if _STATE["lazy"] else "eager"


def is_lazy():
    return _STATE["lazy"]


def jit_stats():
    """What the runtime did, for users and tests to see.

    ``programs``/``instructions``: Programs run by the interpreter and their
    instructions; ``lowerings``: graphs lowered to new Programs; ``cache_hits``:
    realizations that reused one; ``eager_fallbacks``: ops lazy mode ran
    eagerly (integer results, mixed float dtypes); ``trie_nodes``: op-sequence
    prefixes remembered (at most ``MAX_TRIE``); ``replays``: calls of ``jitgrad.jit``
    functions replayed without running their Python; ``tier``: what runs ops now;
    ``compiles``/``disk_cache_loads``: Numba kernels compiled in this process
    versus loaded from the disk cache.
    """
    compiles = loads = 0
    for dispatcher in _kernel_dispatchers():
        compiles += sum(dispatcher.stats.cache_misses.values())
        loads += sum(dispatcher.stats.cache_hits.values())
    return dict(_stats, trie_nodes=_trie._trie_size[0], mode=get_mode(),
                tier="interpreter" if _STATE["lazy"] else "eager kernels",
                compiles=compiles, disk_cache_loads=loads)


def _kernel_dispatchers():
    import sys
    from numba.core.registry import CPUDispatcher
    for name, module in list(sys.modules.items()):
        if name.startswith("jitgrad.kernels.") and module is not None:
            for v in vars(module).values():
                if isinstance(v, CPUDispatcher):
                    yield v
