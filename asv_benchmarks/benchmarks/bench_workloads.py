"""The DESIGN.md training workloads W1-W5: step times, JIT counters, optimizer steps, memory."""
import jitgrad as jg

from .common import MODES, WORKLOADS, built, use_mode, warm, workload_step


class TimeWorkloads:
    """One training step (forward, backward, optimizer step, ``loss.item()``), warmed.

    W1 MLP 16-32-32-1 SGD, W2 MLP 64-128-128-10 SGD, W3 MLP 784-512-512-10 Adam,
    W4 ``sum(tanh(x*a+b)*c)`` on 1e6 elements, W5 100 tiny ops on 8 elements.
    """
    params = [list(WORKLOADS), MODES]
    param_names = ["workload", "mode"]

    def setup(self, workload, mode):
        self.step = workload_step(workload, mode)

    def time_step(self, workload, mode):
        self.step()


class TimeOptimizerStep:
    """``opt.step()`` alone over W3's parameters (784-512-512-10, 0.67M floats) with fixed grads."""
    params = [["SGD", "Adam"]]
    param_names = ["optimizer"]

    def setup(self, optimizer):
        use_mode("lazy")
        self.opt = built(optimizer, lambda: self._optimizer(optimizer))

    @staticmethod
    def _optimizer(name):
        nn = jg.nn
        jg.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        opt = getattr(jg.optim, name)(model.parameters(), lr=1e-3)
        nn.CrossEntropyLoss()(model(jg.randn(256, 784)), jg.randint(0, 10, (256,))).backward()
        warm(opt.step)
        return opt

    def time_step(self, optimizer):
        self.opt.step()


COUNTERS = ("compiles", "lowerings", "programs", "instructions", "eager_fallbacks", "replays")


class TrackJit:
    """What the JIT does per training step once a workload is warm (from ``jg.jit_stats()``).

    ``compiles`` and ``lowerings`` (new Numba kernels, new Programs) should be 0;
    ``programs`` counts native interpreter calls (1: the whole step is one
    Program), ``instructions`` their length, ``eager_fallbacks`` the ops the
    interpreter does not cover, ``replays`` steps that ``jg.jit`` replayed without
    running their Python (1 in jit mode). Eager mode runs no Programs.
    """
    params = [list(WORKLOADS), MODES]
    param_names = ["workload", "mode"]
    timeout = 900  # setup_cache runs every workload in both modes
    steps = 10

    def setup_cache(self):
        counts = {}
        for workload in WORKLOADS:
            for mode in MODES:
                step = workload_step(workload, mode)
                before = jg.jit_stats()
                for _ in range(self.steps):
                    step()
                after = jg.jit_stats()
                counts[workload, mode] = {k: (after[k] - before[k]) / self.steps
                                          for k in COUNTERS}
        return counts

    def track_compiles(self, counts, workload, mode):
        return counts[workload, mode]["compiles"]
    track_compiles.unit = "compiles/step"

    def track_lowerings(self, counts, workload, mode):
        return counts[workload, mode]["lowerings"]
    track_lowerings.unit = "lowerings/step"

    def track_programs(self, counts, workload, mode):
        return counts[workload, mode]["programs"]
    track_programs.unit = "programs/step"

    def track_instructions(self, counts, workload, mode):
        return counts[workload, mode]["instructions"]
    track_instructions.unit = "instructions/step"

    def track_eager_fallbacks(self, counts, workload, mode):
        return counts[workload, mode]["eager_fallbacks"]
    track_eager_fallbacks.unit = "ops/step"

    def track_replays(self, counts, workload, mode):
        return counts[workload, mode]["replays"]
    track_replays.unit = "replays/step"


class PeakMemW3:
    """Peak resident memory of a process that builds W3 and trains it for 5 steps."""
    params = [["lazy", "eager"]]
    param_names = ["mode"]

    def setup(self, mode):
        use_mode(mode)
        self.step = WORKLOADS["W3"](jg)

    def peakmem_train(self, mode):
        for _ in range(5):
            self.step()
