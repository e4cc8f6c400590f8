"""Test-session setup: bounds-checked kernels (set before Numba is imported)."""
import os

# Kernels index arrays without bounds checks in production; tests turn the checks on so an
# out-of-bounds access raises instead of reading garbage.
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")


import pytest  # noqa: E402


@pytest.fixture
def lazy_mode():
    """Run a test in lazy mode (whatever mode the suite runs in), then restore the mode."""
    import jitgrad as jg
    previous = jg.get_mode()
    jg.set_mode("lazy")
    yield
    jg.set_mode(previous)
