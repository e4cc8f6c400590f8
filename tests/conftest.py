"""Test-session setup: bounds-checked kernels (set before Numba is imported)."""
import os

# Kernels index arrays without bounds checks in production; tests turn the checks on so an
# out-of-bounds access raises instead of reading garbage.
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")
