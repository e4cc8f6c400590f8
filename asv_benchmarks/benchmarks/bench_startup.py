"""Cold start, each sample in a fresh interpreter: ``import jitgrad`` and W1's first lazy step.

With the disk cache warm (the default, after any earlier run) the kernels load
from ``~/.cache/jitgrad``; with it empty (``NUMBA_CACHE_DIR`` pointed at a new
temporary folder) every kernel the step needs is compiled: tens of seconds.
"""
import subprocess
import sys
import textwrap

from .common import WORKLOADS_DIR

PRELUDE = f"""
import sys
sys.path.insert(0, {WORKLOADS_DIR!r})
import workloads
"""
FIRST_W1_STEP = """
import jitgrad
jitgrad.set_mode("lazy")
workloads.make_w1(jitgrad)()
"""
EMPTY_CACHE = """
import atexit, os, shutil, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="jitgrad-asv-")
atexit.register(shutil.rmtree, os.environ["NUMBA_CACHE_DIR"], True)
"""


def setup_timeraw_import_and_first_w1_step():
    """Fill the disk cache the timed processes will read (compiles on a first run)."""
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(FIRST_W1_STEP)
    subprocess.run([sys.executable, "-c", code], check=True)


def timeraw_import_and_first_w1_step():
    return FIRST_W1_STEP, PRELUDE


timeraw_import_and_first_w1_step.setup = setup_timeraw_import_and_first_w1_step
timeraw_import_and_first_w1_step.repeat = (3, 10, 20.0)
timeraw_import_and_first_w1_step.timeout = 300


def timeraw_import_and_first_w1_step_empty_cache():
    return FIRST_W1_STEP, EMPTY_CACHE + PRELUDE


timeraw_import_and_first_w1_step_empty_cache.number = 1
timeraw_import_and_first_w1_step_empty_cache.repeat = 1
timeraw_import_and_first_w1_step_empty_cache.rounds = 1
timeraw_import_and_first_w1_step_empty_cache.timeout = 900
