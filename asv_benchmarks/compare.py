"""Time the DESIGN.md workloads in jitgrad and PyTorch in one process and print ratios.

    python asv_benchmarks/compare.py [--workloads W1,W2] [--rounds 5] [--steps 100]
                                     [--eager] [--torch-compile] [--jax]

Implementations run one after another in rounds (never two at once); each
warms up right before its timed block, and each reported figure is the median
step time over all rounds. A ratio is a peer's time over jitgrad lazy's
(higher is better for jitgrad); ``torch/jit`` compares PyTorch eager with the step
wrapped in ``jitgrad.jit`` (captured, then replayed without its Python). A ``*``
marks a jitgrad figure whose timed steps compiled a kernel or lowered a Program,
so it is not steady state.
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import WORKLOADS  # noqa: E402


class Impl:
    """One implementation to time: ``make(workload)`` builds a step; ``enter()`` runs
    before each of its timed blocks (jitgrad switches mode there)."""

    def __init__(self, name, make, enter=lambda: None, counts=lambda: None):
        self.name, self.make, self.enter, self.counts = name, make, enter, counts


def _implementations(args):
    import jitgrad
    impls = []
    torch = None
    try:
        import torch
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        impls.append(Impl("torch eager", lambda w: WORKLOADS[w](torch)))
        if args.torch_compile:
            impls.append(Impl("torch.compile",
                              lambda w: WORKLOADS[w](torch, compile=torch.compile)))
    except ImportError:
        pass
    if args.jax:
        try:
            import jax_workloads
            impls.append(Impl("jax jit", lambda w: jax_workloads.WORKLOADS[w]()))
        except ImportError:
            print("# JAX is not importable: no JAX column")
    modes = ["lazy", "eager"] if args.eager else ["lazy"]
    for mode in modes:
        impls.append(Impl(f"jitgrad {mode}", lambda w: WORKLOADS[w](jitgrad),
                          enter=lambda mode=mode: jitgrad.set_mode(mode),
                          counts=lambda: _jit_counts(jitgrad)))
    impls.append(Impl("jitgrad jit", lambda w: jitgrad.jit(WORKLOADS[w](jitgrad)),
                      enter=lambda: jitgrad.set_mode("lazy"),
                      counts=lambda: _jit_counts(jitgrad)))
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
    parser.add_argument("--torch-compile", action="store_true",
                        help="also time torch.compile (compiles for seconds per workload)")
    parser.add_argument("--jax", action="store_true", help="also time JAX jit, if importable")
    args = parser.parse_args(argv)
    impls, torch = _implementations(args)
    import jitgrad
    import numba
    import numpy
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# jitgrad {jitgrad.__version__}, numba {numba.__version__}, numpy {numpy.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"# medians over {args.rounds} rounds x {args.steps} steps")
    names = [i.name for i in impls]
    peers = [n for n in names if not n.startswith("jitgrad")]
    ratios = [f"{p.split()[0]}/lazy" for p in peers] + (
        ["torch/jit"] if "torch eager" in names else [])
    print(f"{'workload':8s} " + " ".join(f"{n:>15s}" for n in names)
          + "".join(f" {r:>14s}" for r in ratios))
    for w in args.workloads.split(","):
        samples = {n: [] for n in names}
        unsteady, steps = set(), {}
        for impl in impls:
            impl.enter()
            try:
                steps[impl.name] = impl.make(w)
            except Exception as e:  # torch.compile, say, may not handle a workload
                print(f"# {impl.name} {w}: {type(e).__name__}: {e}".splitlines()[0])
        for _ in range(args.rounds):
            for impl in impls:
                if impl.name not in steps:
                    continue
                impl.enter()
                n = max(3, args.steps // (20 if w in ("W3", "W4") else 1))
                times, changed = _time(steps[impl.name], n, max(2, n // 5), impl.counts)
                samples[impl.name] += times
                if changed:
                    unsteady.add(impl.name)
        med = {n: statistics.median(v) if v else float("nan") for n, v in samples.items()}
        cells = [f"{med[n] * 1e6:12.1f}{'*' if n in unsteady else ' '}us" for n in names]
        cells += [f"{med[p] / med['jitgrad lazy']:13.2f}x" for p in peers]
        if "torch eager" in names:
            cells.append(f"{med['torch eager'] / med['jitgrad jit']:13.2f}x")
        print(f"{w:8s} " + " ".join(cells))
        sys.stdout.flush()
    jitgrad.set_mode("lazy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
