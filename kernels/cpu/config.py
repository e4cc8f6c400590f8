"""One place for the flags every CPU kernel is compiled with.

``cache=True`` keeps compiled code on disk so a fresh process loads it in
milliseconds instead of compiling. ``error_model='numpy'`` lets loops that
divide vectorise (no ZeroDivisionError checks). Of the fast-math flags only
``reassoc`` (vectorised reductions) and ``contract`` (FMA) are on: ``nnan``
and ``ninf`` would break NaN and inf propagation, which must match numpy.
"""
import hashlib
import os
import pathlib

import numba
from numba import njit

FASTMATH = {"reassoc", "contract"}
JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)


def kernel(fn):
    """Compile ``fn`` as a CPU kernel with the project's flags."""
    return njit(**JIT_OPTIONS)(fn)


def inline_kernel(fn):
    """A kernel Numba inlines into its callers (a small helper of a hot loop)."""
    return njit(inline="always", **JIT_OPTIONS)(fn)


def _cache_dir():
    """A disk-cache folder named by a hash of every kernel source file.

    Numba checks only a kernel's own file when it decides whether a cache entry
    is stale, but kernels inline helpers from other files (``mathfuncs``): a
    change there must invalidate everything, so the folder name covers all of
    ``kernels/``, and whether Numba's bounds checks are on. ``NUMBA_CACHE_DIR``
    (or ``~/.cache``) chooses where it lives.
    """
    root = pathlib.Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    # Numba's cache ignores its own flags: kernels compiled with bounds checks (the tests)
    # must not be loaded without them, nor the reverse
    digest.update(b"boundscheck" if numba.config.BOUNDSCHECK else b"")
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jitgrad")
    return os.path.join(base, "kernels-" + digest.hexdigest()[:16])


numba.config.CACHE_DIR = _cache_dir()
