"""Per-op costs: recording overhead of a tiny op, and forward+backward of op families."""
import jitgrad as jg

from .common import MODES, built, use_mode, warm


class TimeRecording:
    """``x + y`` on 8 elements: what one op costs the Python front end.

    In lazy mode ``time_add`` only records a pending node (with a grad_fn when
    ``requires_grad``); ``time_add_realize`` adds a realization through the
    cached one-instruction Program. In eager mode both compute at once.
    """
    params = [MODES, [False, True]]
    param_names = ["mode", "requires_grad"]
    number = 200  # a few microseconds each: time many per sample

    def setup(self, mode, requires_grad):
        use_mode(mode)  # also drops the list of earlier, unrealized results
        self.x, self.y = built((mode, requires_grad), lambda: self._inputs(requires_grad))

    @staticmethod
    def _inputs(requires_grad):
        jg.manual_seed(0)
        x, y = jg.randn(8, requires_grad=requires_grad), jg.randn(8)
        warm(lambda: jg.realize(x + y))
        return x, y

    def time_add(self, mode, requires_grad):
        self.x + self.y

    def time_add_realize(self, mode, requires_grad):
        jg.realize(self.x + self.y)


OPS = {
    "exp": lambda x, y: x.exp(),
    "tanh": lambda x, y: x.tanh(),
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "sum": lambda x, y: x.sum(),
    "mean_dim": lambda x, y: x.mean(dim=-1),
    "amax_dim": lambda x, y: x.amax(dim=-1),
    "matmul": lambda x, y: x @ y,
    "softmax": lambda x, y: jg.softmax(x, dim=-1),
}
SHAPES = {"small": (8, 8), "large": (1000, 1000)}
MATMUL_SHAPES = {"small": (8, 8), "large": (512, 512)}


class TimeOps:
    """Forward and backward of one op (then ``sum``), both operands requiring grad.

    Families: elementwise unary (exp, tanh) and binary (add, mul), reductions,
    matmul, softmax; ``small`` is 8x8, ``large`` 1000x1000 (matmul 512x512).
    """
    params = [list(OPS), list(SHAPES), MODES]
    param_names = ["op", "size", "mode"]

    def setup(self, op, size, mode):
        use_mode(mode)
        self.step = built((op, size, mode), lambda: warm(self._step(op, size)))
        self.number = 100 if size == "small" else 0  # 0: asv's default

    @staticmethod
    def _step(op, size):
        jg.manual_seed(0)
        shape = (MATMUL_SHAPES if op == "matmul" else SHAPES)[size]
        x, y = (jg.randn(*shape, requires_grad=True) for _ in range(2))
        f = OPS[op]

        def step():
            x.grad = y.grad = None
            out = f(x, y)
            loss = out if out.ndim == 0 else out.sum()
            loss.backward()
            return loss.item()
        return step

    def time_forward_backward(self, op, size, mode):
        self.step()
