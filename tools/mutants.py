"""Hand-made mutants: does the suite notice when a rule that matters is broken?

Each mutant replaces one exact piece of the source (it must occur once) with a wrong
version: a component dropped from a cache key, a VJP rule off by a sign or a
factor, a version check disabled, an optimizer kernel's formula changed. The tree is
copied (as committed) to a scratch folder, the mutant applied there, and the tests that should
catch it run against the copy (``PYTHONPATH`` puts the copy first; kernels get a
disk cache of their own). A mutant is *killed* when those tests fail. Survivors are
gaps in the suite.

    python tools/mutants.py              # all mutants, one at a time
    python tools/mutants.py key-slice-step vjp-exp   # some of them
    python tools/mutants.py --list

Runs take minutes (a kernel mutant recompiles every kernel once); run them alone
on the machine.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRATCH = pathlib.Path(os.environ.get("JITGRAD_MUTANT_DIR", "/tmp/jitgrad-mutant"))
TIMEOUT = 900  # seconds per mutant

RECORDER = "jitgrad/lazy/recorder.py"
REALIZATION = "jitgrad/lazy/realization.py"
STEP_CACHE = "jitgrad/lazy/step_cache.py"
ELEMENTWISE = "jitgrad/ops/elementwise.py"
KEY_TESTS = ["tests/test_cache_reuse.py", "tests/test_lazy.py", "tests/test_lazy_fuzz.py",
             "tests/test_lazy_semantics.py"]
GRAD_TESTS = ["tests/test_ops.py", "-k", "gradcheck or backward_float32"]
VERSION_TESTS = ["tests/test_autograd.py", "tests/test_lazy_fuzz.py"]
OPTIM_TESTS = ["tests/test_optim.py", "tests/test_optim_extra.py"]

# name: (file, original, mutant, tests)
MUTANTS = {
    # --- what lazy mode's caches are keyed by ---
    "key-op": (RECORDER, "    key = (op, grad, akey, refs)\n", "    key = (grad, akey, refs)\n",
               KEY_TESTS),
    "key-grad": (RECORDER, "    key = (op, grad, akey, refs)\n", "    key = (op, akey, refs)\n",
                 KEY_TESTS),
    "key-attrs": (RECORDER, "    key = (op, grad, akey, refs)\n", "    key = (op, grad, refs)\n",
                  KEY_TESTS),
    "key-refs": (RECORDER, "    key = (op, grad, akey, refs)\n", "    key = (op, grad, akey)\n",
                 KEY_TESTS),
    "key-slice-start": (REALIZATION, 'return ("slice", v.start, v.stop, v.step)',
                        'return ("slice", v.stop, v.step)', KEY_TESTS),
    "key-slice-stop": (REALIZATION, 'return ("slice", v.start, v.stop, v.step)',
                       'return ("slice", v.start, v.step)', KEY_TESTS),
    "key-slice-step": (REALIZATION, 'return ("slice", v.start, v.stop, v.step)',
                       'return ("slice", v.start, v.stop)', KEY_TESTS),
    "key-mask-count": (REALIZATION, 'return ("mask", v.shape, int(np.count_nonzero(v)))',
                       'return ("mask", v.shape)', KEY_TESTS),
    "key-array-shape": (REALIZATION, 'return ("array", v.shape, v.dtype.str)',
                        'return ("array", v.dtype.str)', KEY_TESTS),
    "key-input-shape": (RECORDER, "key = t._bk = (t._shape, t._npdtype, t._requires_grad, "
                              "t._grad_fn is None, strides)",
                        "key = t._bk = (t._npdtype, t._requires_grad, t._grad_fn is None, strides)",
                        KEY_TESTS),
    "key-input-dtype": (RECORDER, "key = t._bk = (t._shape, t._npdtype, t._requires_grad, "
                              "t._grad_fn is None, strides)",
                        "key = t._bk = (t._shape, t._requires_grad, t._grad_fn is None, strides)",
                        KEY_TESTS),
    "key-input-requires-grad": (RECORDER, "key = t._bk = (t._shape, t._npdtype, "
                                      "t._requires_grad, t._grad_fn is None, strides)",
                                "key = t._bk = (t._shape, t._npdtype, t._grad_fn is None, "
                                "strides)",
                                KEY_TESTS),
    "key-input-grad-fn": (RECORDER, "key = t._bk = (t._shape, t._npdtype, t._requires_grad, "
                                "t._grad_fn is None, strides)",
                          "key = t._bk = (t._shape, t._npdtype, t._requires_grad, strides)",
                          KEY_TESTS),
    "key-input-strides": (RECORDER, "key = t._bk = (t._shape, t._npdtype, t._requires_grad, "
                                    "t._grad_fn is None, strides)",
                          "key = t._bk = (t._shape, t._npdtype, t._requires_grad, "
                          "t._grad_fn is None)", KEY_TESTS),
    "key-program-outputs": (REALIZATION, "    okey = (private_from, tuple(p.pos for p in outputs))\n",
                            "    okey = private_from\n", KEY_TESTS),
    "key-step-implicit-scalar": (STEP_CACHE, "    if p.shape and _numel(p.shape) != 1:",
                                 "    if False:", KEY_TESTS),
    "hot-path-op": (RECORDER, "    if last is not None and last[0] is op and last[2] is akey and "
                          "last[1] is grad:",
                    "    if last is not None and last[2] is akey and last[1] is grad:",
                    KEY_TESTS),
    "hot-path-grad": (RECORDER, "    if last is not None and last[0] is op and last[2] is akey "
                            "and last[1] is grad:",
                      "    if last is not None and last[0] is op and last[2] is akey:",
                      KEY_TESTS),
    # --- VJP rules ---
    "vjp-exp": (ELEMENTWISE, 'lambda c, g: (g * c.saved("out"),), ("out",))',
                'lambda c, g: (g * c.saved("out") * 1.001,), ("out",))', GRAD_TESTS),
    "vjp-cos": (ELEMENTWISE, "lambda c, g: (g * -sin(c.saved(0)),), (0,))",
                "lambda c, g: (g * sin(c.saved(0)),), (0,))", GRAD_TESTS),
    "vjp-sqrt": (ELEMENTWISE, 'lambda c, g: (g / (2 * c.saved("out")),)',
                 'lambda c, g: (g / (3 * c.saved("out")),)', GRAD_TESTS),
    "vjp-reciprocal": (ELEMENTWISE, 'lambda c, g: (-g * c.saved("out") ** 2,), ("out",))',
                       'lambda c, g: (g * c.saved("out") ** 2,), ("out",))', GRAD_TESTS),
    # --- version counters of saved tensors ---
    "version-check": ("jitgrad/autograd/graph.py",
                      "since it was saved.\"\"\"\n        if self.counter[0] != self.version:",
                      "since it was saved.\"\"\"\n        if False:", VERSION_TESTS),
    # --- optimizer kernels ---
    "sgd-dampening": ("kernels/cpu/optim.py",
                      "b = g if first else f(np.float64(bf[i]) * momentum) + keep * g",
                      "b = g if first else f(np.float64(bf[i]) * momentum) + g", OPTIM_TESTS),
    "sgd-nesterov": ("kernels/cpu/optim.py", "(g + mom * b if nesterov else b)",
                     "(g + b if nesterov else b)", OPTIM_TESTS),
    "adam-bias-correction": ("kernels/cpu/optim.py",
                             "bc2_sqrt = f((1.0 - beta2 ** step) ** 0.5)",
                             "bc2_sqrt = f((1.0 - beta2 ** step))", OPTIM_TESTS),
    "adam-eps": ("kernels/cpu/optim.py", "(np.sqrt(v) / bc2_sqrt + eps_)",
                 "(np.sqrt(v + eps_) / bc2_sqrt)", OPTIM_TESTS),
}


def _copy_tree():
    """The committed tree (``git archive HEAD``) in SCRATCH: work in progress in the checkout
    stays out of it."""
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    SCRATCH.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(SCRATCH)], input=archive, check=True)
    # the package maps jitgrad.kernels to kernels/ (pyproject.toml); the copy links it
    (SCRATCH / "jitgrad" / "kernels").symlink_to("../kernels")


def _run_tests(tests):
    env = dict(os.environ, PYTHONPATH=str(SCRATCH),
               NUMBA_CACHE_DIR=str(SCRATCH.parent / (SCRATCH.name + "-numba-cache")))
    check = subprocess.run([sys.executable, "-c", "import jitgrad; print(jitgrad.__file__)"],
                           cwd=SCRATCH, env=env, capture_output=True, text=True)
    assert check.stdout.startswith(str(SCRATCH)), f"not the copy: {check.stdout}{check.stderr}"
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                              "no:cacheprovider", *tests], cwd=SCRATCH, env=env,
                             capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:  # a mutant can loop for ever: that is noticed too
        return "timeout", [f"no result in {TIMEOUT} s"]
    return run.returncode, run.stdout.strip().splitlines()[-1:] or [run.stderr[-200:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        print("\n".join(MUTANTS))
        return 0
    names = args.names or list(MUTANTS)
    survived = []
    for name in names:
        path, original, mutant, tests = MUTANTS[name]
        _copy_tree()
        target = SCRATCH / path
        text = target.read_text()
        if text.count(original) != 1:  # the code moved on: the mutant needs updating
            print(f"{name:28s} STALE     the original text is not in {path} once", flush=True)
            survived.append(name)
            continue
        target.write_text(text.replace(original, mutant))
        start = time.time()
        code, tail = _run_tests(tests)
        verdict = "killed" if code != 0 else "SURVIVED"  # (a timeout kills it too)
        if code == 0:
            survived.append(name)
        print(f"{name:28s} {verdict:9s} {time.time() - start:6.0f} s  {tail[0]}", flush=True)
    print(f"\n{len(names) - len(survived)} of {len(names)} mutants killed"
          + (f"; not killed: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
