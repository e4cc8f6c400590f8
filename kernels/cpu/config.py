"""One place for the flags every CPU kernel is compiled with.

Every kernel is cached on disk, so a fresh process loads it in milliseconds
instead of compiling, in a folder of jitgrad's own (``CACHE_DIR``): Numba's
process-wide setting (``numba.config.CACHE_DIR``) is left alone, so the user's
own ``@njit(cache=True)`` functions stay where Numba puts them. ``error_model='numpy'`` lets loops that
divide vectorise (no ZeroDivisionError checks). Of the fast-math flags only
``reassoc`` (vectorised reductions) and ``contract`` (FMA) are on: ``nnan``
and ``ninf`` would break NaN and inf propagation, which must match numpy.
"""
import hashlib
import os
import pathlib

import numba
from numba import njit
from numba.core import caching

FASTMATH = {"reassoc", "contract"}
JIT_OPTIONS = dict(nogil=True, error_model="numpy", fastmath=FASTMATH)


def kernel(fn):
    """Compile ``fn`` as a CPU kernel with the project's flags, cached in ``CACHE_DIR``."""
    return _cached(njit(**JIT_OPTIONS)(fn))


def inline_kernel(fn):
    """A kernel Numba inlines into its callers (a small helper of a hot loop)."""
    return _cached(njit(inline="always", **JIT_OPTIONS)(fn))


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


CACHE_DIR = _cache_dir()


class _KernelCacheLocator(caching.UserProvidedCacheLocator):
    """Numba's locator for a user-chosen folder, pointed at ``CACHE_DIR`` instead of the
    process-wide ``numba.config.CACHE_DIR``."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(CACHE_DIR, self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        return super(caching.UserProvidedCacheLocator, cls).from_function(py_func, py_file)


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_KernelCacheLocator]


class _KernelCache(caching.FunctionCache):
    _impl_class = _KernelCacheImpl


def _cached(dispatcher):
    """``dispatcher`` with its compiled code kept in ``CACHE_DIR`` (what ``cache=True`` does,
    with the folder chosen for this dispatcher alone)."""
    dispatcher._cache = _KernelCache(dispatcher.py_func)
    return dispatcher
