"""Time the DESIGN.md workloads in jitgrad and PyTorch in one process and print ratios.

    python asv_benchmarks/compare.py [--workloads W1,W2] [--rounds 5] [--steps 100] [--eager]

Implementations run one after another in rounds (never two at once); each
warms up right before its timed block, and each reported figure is the median
step time over all rounds. A ratio is PyTorch's time over jitgrad's (higher
is better for jitgrad). A ``*`` marks a jitgrad figure whose timed steps
compiled a kernel or lowered a Program, so it is not steady state.
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import WORKLOADS  # noqa: E402


def _implementations(include_eager):
    import jitgrad
    impls = {}
    try:
        import torch
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        impls["torch eager"] = (torch, None)
    except ImportError:
        torch = None
    impls["jitgrad lazy"] = (jitgrad, "lazy")
    if include_eager:
        impls["jitgrad eager"] = (jitgrad, "eager")
    return impls, torch


def _jit_counts(lib):
    stats = lib.jit_stats()
    return stats["compiles"], stats["lowerings"]


def _time(step, steps, warmup, counts=lambda: None):
    """Step times after ``warmup`` untimed steps, and whether ``counts()`` changed meanwhile."""
    for _ in range(warmup):
        step()
    before = counts()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times, counts() != before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eager", action="store_true", help="also time jitgrad's eager mode")
    args = parser.parse_args(argv)
    impls, torch = _implementations(args.eager)
    import jitgrad
    import numba
    import numpy
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# jitgrad {jitgrad.__version__}, numba {numba.__version__}, numpy {numpy.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"# medians over {args.rounds} rounds x {args.steps} steps")
    names = list(impls)
    ours = [n for n in names if n.startswith("jitgrad")]
    ratios = [f"torch/{n[8:]}" for n in ours] if "torch eager" in impls else []
    print(f"{'workload':8s} " + " ".join(f"{n:>15s}" for n in names)
          + "".join(f" {r:>14s}" for r in ratios))
    for w in args.workloads.split(","):
        make = WORKLOADS[w]
        samples = {n: [] for n in names}
        unsteady = set()
        steps = {}
        for name in names:
            lib, mode = impls[name]
            if mode:
                lib.set_mode(mode)
            steps[name] = make(lib)
        for _ in range(args.rounds):
            for name in names:
                lib, mode = impls[name]
                if mode:
                    lib.set_mode(mode)
                n = max(3, args.steps // (20 if w in ("W3", "W4") else 1))
                times, changed = _time(steps[name], n, max(2, n // 5),
                                       lambda: mode and _jit_counts(lib))
                samples[name] += times
                if changed:
                    unsteady.add(name)
        med = {n: statistics.median(v) for n, v in samples.items()}
        cells = [f"{med[n] * 1e6:12.1f}{'*' if n in unsteady else ' '}us" for n in names]
        if ratios:
            cells += [f"{med['torch eager'] / med[n]:13.2f}x" for n in ours]
        print(f"{w:8s} " + " ".join(cells))
        sys.stdout.flush()
    jitgrad.set_mode("lazy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
