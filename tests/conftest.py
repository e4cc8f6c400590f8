"""Test-session setup: bounds-checked kernels, and every test isolated from the others.

Each CI pass runs the whole suite in one mode (lazy, the default, or eager with
``JITGRAD_MODE=eager``). A test may switch modes, grad mode, the default dtype,
print options or the random generators (jitgrad's, numpy's, torch's); the
``isolated`` fixture puts all of them back afterwards, so the next test starts in
the pass's mode. The mode each test starts in is counted, printed at the end of
the run, and a test that started in another mode than the pass's fails the run: a
pass that silently ran in the other mode would test nothing of its own.
"""
import os

# Kernels index arrays without bounds checks in production; tests turn the checks on so an
# out-of-bounds access raises instead of reading garbage.
os.environ.setdefault("NUMBA_BOUNDSCHECK", "1")

import collections  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jitgrad as jg  # noqa: E402
import jitgrad.random as jg_random  # noqa: E402
from jitgrad import dtypes as jg_dtypes  # noqa: E402

PASS_MODE = "eager" if os.environ.get("JITGRAD_MODE", "lazy").lower() == "eager" else "lazy"
_started_in = collections.Counter()
_strays = []


def pytest_configure(config):
    """CI sets ``JITGRAD_REQUIRE_TORCH=1``: without PyTorch its parity tests would skip."""
    if os.environ.get("JITGRAD_REQUIRE_TORCH") == "1":
        try:
            import torch  # noqa: F401
        except ImportError as error:
            raise pytest.UsageError("JITGRAD_REQUIRE_TORCH=1 but PyTorch, the reference of "
                                    f"the parity tests, cannot be imported: {error}") from None


@pytest.fixture(autouse=True)
def isolated(request):
    """Count the mode this test starts in; restore every global setting it may change."""
    mode = jg.get_mode()
    _started_in[mode] += 1
    if mode != PASS_MODE:
        _strays.append(request.node.nodeid)
    grad = jg.is_grad_enabled()
    default_dtype = jg.get_default_dtype()
    printoptions = jg.get_printoptions()
    rng_state = jg_random._rng.bit_generator.state
    np_state = np.random.get_state()
    torch = sys.modules.get("torch")  # (building torch modules draws from its generator)
    torch_state = torch.get_rng_state() if torch is not None else None
    yield
    jg.set_mode(mode)
    jg.set_grad_enabled(grad)
    jg_dtypes.set_default_dtype(default_dtype)
    jg.set_printoptions(**printoptions)
    jg_random._rng = np.random.Generator(np.random.PCG64())
    jg_random._rng.bit_generator.state = rng_state
    np.random.set_state(np_state)
    if torch_state is not None:
        torch.set_rng_state(torch_state)


@pytest.fixture
def lazy_mode():
    """Run a test in lazy mode (whatever mode the suite runs in); ``isolated`` restores it."""
    jg.set_mode("lazy")


def pytest_terminal_summary(terminalreporter):
    counts = ", ".join(f"{n} in {mode} mode" for mode, n in sorted(_started_in.items()))
    terminalreporter.write_line(f"jitgrad: tests started {counts or 'none'} "
                                f"(this pass: {PASS_MODE})")
    for nodeid in _strays[:20]:
        terminalreporter.write_line(f"jitgrad: started outside {PASS_MODE} mode: {nodeid}")


def pytest_sessionfinish(session):
    if _strays and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
