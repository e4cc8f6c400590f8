"""What the benchmark modules share: the DESIGN.md workloads, mode switching, JIT warm-up.

asv imports this package from ``asv_benchmarks/benchmarks`` and jitgrad from the
environment it built, so ``workloads.py`` (one folder up, shared with
``compare.py``) is put on ``sys.path`` here.
"""
import os
import sys

import jitgrad as jg

WORKLOADS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if WORKLOADS_DIR not in sys.path:
    sys.path.insert(0, WORKLOADS_DIR)

from workloads import WORKLOADS  # noqa: E402

MODES = ["lazy", "eager", "jit"]  # jit: lazy mode, the step wrapped in jg.jit


def use_mode(mode):
    """Switch to ``mode`` (``jit`` runs in lazy mode) after realizing what lazy mode
    still holds, by passing through eager mode."""
    jg.set_mode("eager")
    jg.set_mode("lazy" if mode == "jit" else mode)


def jit_counts():
    """The ``jit_stats()`` counters that say whether the JIT is still doing first-time work."""
    s = jg.jit_stats()
    return s["compiles"], s["lowerings"]


def warm(fn, min_calls=3, max_calls=50):
    """Call ``fn`` until two calls in a row neither compile a kernel nor lower a Program.

    Stops after ``max_calls`` regardless: a cache that never settles then shows
    in the ``track_*`` benchmarks instead of failing every timing.
    """
    quiet = 0
    for calls in range(1, max_calls + 1):
        before = jit_counts()
        fn()
        quiet = quiet + 1 if jit_counts() == before else 0
        if quiet >= 2 and calls >= min_calls:
            break
    return fn


_built = {}


def built(key, make):
    """``make()``, once per benchmark process: asv may re-run ``setup`` before every call.

    A ``NotImplementedError`` becomes a ``RuntimeError``: raised in ``setup``,
    asv would take it to mean "skip this benchmark" and report success.
    """
    if key not in _built:
        try:
            _built[key] = make()
        except NotImplementedError as e:
            raise RuntimeError(f"jitgrad does not implement what {key} needs: {e}") from e
    return _built[key]


def workload_step(name, mode):
    """Workload ``name``'s training step in ``mode``, built in that mode and warmed (in
    ``jit`` mode: until it replays)."""
    use_mode(mode)
    if mode != "jit":
        return built((name, mode), lambda: warm(WORKLOADS[name](jg)))

    def make():
        step = jg.jit(WORKLOADS[name](jg))
        for _ in range(6):  # two runs to capture, then replays
            step()
        return step
    return built((name, mode), make)
