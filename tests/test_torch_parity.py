"""jitgrad against PyTorch: the same code through both must agree.

(a) Random compositions: a seeded generator builds 50 expression programs
    from a pool of ops (unary, broadcasting binary, reductions with dims and
    keepdim, matmul, shape ops, indexing, softmax, cat/stack/split) on float32,
    float64 and mixed inputs. Each program runs through jitgrad and torch from
    identical input values; output values, the output's ``grad_fn`` name and
    the gradient of every leaf after ``backward(v)`` with the same random ``v``
    must match. A table of single ops at awkward points (zeros, ties, bounds,
    in-place on views) is compared the same way.
(b) Bad input: a table of erroneous calls. Both libraries must raise the same
    exception type, jitgrad's message must equal torch's with ``torch.``
    replaced by ``jitgrad.``, and the inputs must be left untouched (values
    and version counters).
(c) ``repr`` of tensors that require grad or carry a ``grad_fn``.

The whole module is skipped when torch is not installed.
"""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import jitgrad as jg  # noqa: E402

NP_DTYPES = {"float32": np.float32, "float64": np.float64}


# =====================================================================================
# (a) random compositions
# =====================================================================================

class Program:
    """A straight-line program over values v0, v1, ...: leaves and op applications.

    Each op is a function ``fn(L, *tensors)`` written once against the common
    torch/jitgrad API, where ``L`` is the library module.
    """

    def __init__(self, seed):
        self.seed = seed
        self.steps = []   # ("leaf", array, requires_grad) or ("op", fn, args)
        self.shapes = []
        self.dtypes = []
        self.lines = []

    def leaf(self, arr, requires_grad=True):
        self.steps.append(("leaf", arr, requires_grad))
        self.shapes.append(tuple(arr.shape))
        self.dtypes.append(arr.dtype.name)
        self.lines.append(f"v{len(self.shapes) - 1} = leaf({arr.dtype.name}, "
                          f"{list(arr.shape)}, requires_grad={requires_grad})")
        return len(self.shapes) - 1

    def op(self, fn, args, shape, desc, dtype=None):
        self.steps.append(("op", fn, tuple(args)))
        self.shapes.append(tuple(shape))
        self.dtypes.append(dtype or _promote_names(*[self.dtypes[a] for a in args]))
        self.lines.append(f"v{len(self.shapes) - 1} = "
                          + desc.format(*[f"v{a}" for a in args]))
        return len(self.shapes) - 1

    def run(self, L):
        vals, leaves = [], []
        for step in self.steps:
            if step[0] == "leaf":
                t = L.tensor(step[1].copy(), requires_grad=step[2])
                vals.append(t)
                leaves.append(t)
            else:
                vals.append(step[1](L, *[vals[a] for a in step[2]]))
        return vals[-1], leaves

    def __str__(self):
        return f"program seed={self.seed}:\n  " + "\n  ".join(self.lines)


def _promote_names(*names):
    return "float64" if "float64" in names else "float32"


def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _broadcast(a, b):
    return tuple(np.broadcast_shapes(a, b))


class Generator:
    """Builds one random program: a chain on a current value ``x``; binary ops take
    an earlier value or a fresh leaf as the other operand, so graphs share nodes."""

    MAX_NUMEL = 96

    def __init__(self, seed, index=0):
        self.rng = np.random.default_rng(seed)
        self.p = Program(seed)
        self.index = index      # the program's number: where its variant cycles start
        self.calls = {}
        self.dtype = ("float32", "float64")[int(self.rng.integers(2))]
        self.mixed = self.rng.random() < 0.2   # fresh leaves may have the other dtype

    # --- leaves -------------------------------------------------------------------------
    def new_leaf(self, shape, requires_grad=None, dtype=None):
        if requires_grad is None:
            requires_grad = self.rng.random() < 0.8
        if dtype is None:
            dtype = self.dtype
            if self.mixed and self.rng.random() < 0.5:
                dtype = "float64" if dtype == "float32" else "float32"
        arr = self.rng.standard_normal(shape).astype(NP_DTYPES[dtype])
        return self.p.leaf(arr, requires_grad)

    def random_shape(self):
        ndim = int(self.rng.integers(1, 4))
        return tuple(int(n) for n in self.rng.integers(1, 5, ndim))

    def compatible_shape(self, shape):
        """A shape that broadcasts with ``shape`` (dims set to 1, grown from 1, dropped)."""
        out = []
        for n in shape:
            r = self.rng.random()
            if r < 0.3:
                out.append(1)
            elif n == 1 and r < 0.6:
                out.append(int(self.rng.integers(2, 4)))
            else:
                out.append(n)
        drop = int(self.rng.integers(0, len(out) + 1)) if self.rng.random() < 0.3 else 0
        out = out[drop:]
        if self.rng.random() < 0.15 and len(out) < 4:
            out = [int(self.rng.integers(1, 3))] + out
        return tuple(out)

    def other_operand(self, x):
        """An earlier value or a fresh leaf broadcast-compatible with value ``x``."""
        shape = self.p.shapes[x]
        earlier = [i for i in range(len(self.p.shapes)) if i != x
                   and _is_broadcastable(self.p.shapes[i], shape)
                   and _numel(_broadcast(self.p.shapes[i], shape)) <= self.MAX_NUMEL]
        if earlier and self.rng.random() < 0.4:
            return int(self.rng.choice(earlier))
        for _ in range(10):
            s = self.compatible_shape(shape)
            if _numel(_broadcast(s, shape)) <= self.MAX_NUMEL:
                return self.new_leaf(s)
        return self.new_leaf(shape)

    def variant(self, kind, n):
        """Which of a kind's ``n`` variants to use: program ``i`` walks the variants from
        ``i`` on, so every variant is used by some program (kinds, shapes, dims and
        operands stay random)."""
        k = self.calls.get(kind, 0)
        self.calls[kind] = k + 1
        return (self.index + k) % n

    def dim(self, ndim):
        return int(self.rng.integers(-ndim, ndim))

    # --- the pool ---------------------------------------------------------------------
    def step(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        kinds = ["unary"] * 4 + ["scalar"] * 2 + ["binary"] * 4 + ["shape"] * 3 + ["index"] * 3
        if nd >= 1:
            kinds += ["reduce"] * 6 + ["softmax"] + ["join"] * 2
        if nd in (1, 2, 3):
            kinds += ["matmul"] * 2
        kind = kinds[int(self.rng.integers(len(kinds)))]
        return getattr(self, "op_" + kind)(x)

    def op_unary(self, x):
        s = self.p.shapes[x]
        table = [
            (lambda L, a: -a, "-{0}"),
            (lambda L, a: a.abs(), "{0}.abs()"),
            (lambda L, a: a.exp(), "{0}.exp()"),
            (lambda L, a: L.exp(a * 0.5), "exp({0} * 0.5)"),
            (lambda L, a: a.sin(), "{0}.sin()"),
            (lambda L, a: L.cos(a), "cos({0})"),
            (lambda L, a: a.tanh(), "{0}.tanh()"),
            (lambda L, a: L.sigmoid(a), "sigmoid({0})"),
            (lambda L, a: a.relu(), "{0}.relu()"),
            (lambda L, a: L.relu(a), "relu({0})"),
            (lambda L, a: (a.abs() + 0.5).log(), "({0}.abs() + 0.5).log()"),
            (lambda L, a: L.sqrt(a.abs() + 0.5), "sqrt({0}.abs() + 0.5)"),
            (lambda L, a: (a.abs() + 0.5).reciprocal(), "({0}.abs() + 0.5).reciprocal()"),
            (lambda L, a: a.clamp(-0.5, 0.8), "{0}.clamp(-0.5, 0.8)"),
            (lambda L, a: L.clamp(a, min=-0.3), "clamp({0}, min=-0.3)"),
            (lambda L, a: a.clamp(max=0.2), "{0}.clamp(max=0.2)"),
            (lambda L, a: a ** 2, "{0} ** 2"),
            (lambda L, a: a ** 3, "{0} ** 3"),
            (lambda L, a: (a.abs() + 0.5) ** 1.5, "({0}.abs() + 0.5) ** 1.5"),
            (lambda L, a: a.square(), "{0}.square()"),
            (lambda L, a: 2 ** a, "2 ** {0}"),
            (lambda L, a: a.clone(), "{0}.clone()"),
        ]
        fn, desc = table[self.variant("unary", len(table))]
        return self.p.op(fn, [x], s, desc)

    def op_scalar(self, x):
        s = self.p.shapes[x]
        c = float(np.round(self.rng.uniform(0.5, 3.0), 2))
        table = [
            (lambda L, a: a * c, "{0} * %s" % c),
            (lambda L, a: c * a, "%s * {0}" % c),
            (lambda L, a: a + c, "{0} + %s" % c),
            (lambda L, a: c + a, "%s + {0}" % c),
            (lambda L, a: a - c, "{0} - %s" % c),
            (lambda L, a: c - a, "%s - {0}" % c),
            (lambda L, a: a / c, "{0} / %s" % c),
            (lambda L, a: c / (a.abs() + 0.5), "%s / ({0}.abs() + 0.5)" % c),
            (lambda L, a: L.mul(a, c), "mul({0}, %s)" % c),
            (lambda L, a: L.add(a, a, alpha=c), "add({0}, {0}, alpha=%s)" % c),
        ]
        fn, desc = table[self.variant("scalar", len(table))]
        return self.p.op(fn, [x], s, desc)

    def op_binary(self, x):
        y = self.other_operand(x)
        shape = _broadcast(self.p.shapes[x], self.p.shapes[y])
        if self.rng.random() < 0.1:  # the result depends on {0} only: keep {0} = x
            return self.p.op(lambda L, a, b: L.where(b > 0, a, 0.5), [x, y], shape,
                             "where({1} > 0, {0}, 0.5)", dtype=self.p.dtypes[x])
        if self.rng.random() < 0.5:
            x, y = y, x
        table = [
            (lambda L, a, b: a + b, "{0} + {1}"),
            (lambda L, a, b: L.add(a, b), "add({0}, {1})"),
            (lambda L, a, b: a - b, "{0} - {1}"),
            (lambda L, a, b: L.sub(a, b, alpha=0.5), "sub({0}, {1}, alpha=0.5)"),
            (lambda L, a, b: a * b, "{0} * {1}"),
            (lambda L, a, b: a / (b.abs() + 0.5), "{0} / ({1}.abs() + 0.5)"),
            (lambda L, a, b: L.maximum(a, b), "maximum({0}, {1})"),
            (lambda L, a, b: L.minimum(a, b), "minimum({0}, {1})"),
            (lambda L, a, b: L.where(a > b, a, b * 2), "where({0} > {1}, {0}, {1} * 2)"),
            (lambda L, a, b: (a.abs() + 0.5) ** b.tanh(), "({0}.abs() + 0.5) ** {1}.tanh()"),
            (lambda L, a, b: a * b + a, "{0} * {1} + {0}"),
        ]
        fn, desc = table[self.variant("binary", len(table))]
        return self.p.op(fn, [x, y], shape, desc)

    def _tie_break(self, x, scale=1e-3):
        """Add distinct constants so max/min reductions have no ties (relu and clamp
        make exact ties, whose gradient routing is implementation-defined), and var/std
        see no (near-)constant rows, whose gradient is dominated by rounding."""
        s = self.p.shapes[x]
        arr = (self.rng.permutation(_numel(s)).reshape(s) * scale).astype(
            NP_DTYPES[self.p.dtypes[x]])
        n = self.p.leaf(arr, requires_grad=False)
        return self.p.op(lambda L, a, b: a + b, [x, n], s, "{0} + {1}")

    def op_reduce(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        d = self.dim(nd)
        keep = bool(self.rng.random() < 0.5)
        dn = d % nd
        kept = tuple(1 if i == dn else n for i, n in enumerate(s)) if keep else \
            tuple(n for i, n in enumerate(s) if i != dn)
        which = self.variant("reduce", 14)  # 13 and the fall-throughs: prod
        if which == 0:
            return self.p.op(lambda L, a: a.sum(), [x], (), "{0}.sum()")
        if which == 1:
            return self.p.op(lambda L, a: a.sum(d, keepdim=keep), [x], kept,
                             f"{{0}}.sum({d}, keepdim={keep})")
        if which == 2 and nd >= 2:
            dims = tuple(sorted(int(v) for v in self.rng.choice(nd, 2, replace=False)))
            shape = tuple(1 if i in dims else n for i, n in enumerate(s)) if keep else \
                tuple(n for i, n in enumerate(s) if i not in dims)
            return self.p.op(lambda L, a: L.sum(a, dims, keepdim=keep), [x], shape,
                             f"sum({{0}}, {dims}, keepdim={keep})")
        if which == 3:
            return self.p.op(lambda L, a: a.mean(), [x], (), "{0}.mean()")
        if which == 4:
            return self.p.op(lambda L, a: a.mean(dim=d, keepdim=keep), [x], kept,
                             f"{{0}}.mean(dim={d}, keepdim={keep})")
        if which == 5:
            x = self._tie_break(x)
            return self.p.op(lambda L, a: a.amax(d, keepdim=keep), [x], kept,
                             f"{{0}}.amax({d}, keepdim={keep})")
        if which == 6:
            x = self._tie_break(x)
            return self.p.op(lambda L, a: a.amin(), [x], (), "{0}.amin()")
        if which == 7:
            x = self._tie_break(x)
            return self.p.op(lambda L, a: a.max(d, keepdim=keep).values, [x], kept,
                             f"{{0}}.max({d}, keepdim={keep}).values")
        if which == 8:
            x = self._tie_break(x)
            return self.p.op(lambda L, a: L.min(a, d, keep)[0], [x], kept,
                             f"min({{0}}, {d}, {keep})[0]")
        if which == 9:
            x = self._tie_break(x)
            return self.p.op(lambda L, a: a.max(), [x], (), "{0}.max()")
        if which == 10 and s[dn] >= 2:
            x = self._tie_break(x, 0.2)
            return self.p.op(lambda L, a: a.var(d, keepdim=keep), [x], kept,
                             f"{{0}}.var({d}, keepdim={keep})")
        if which == 11 and s[dn] >= 2:
            x = self._tie_break(x, 0.2)
            return self.p.op(lambda L, a: (a * 3).std(d, keepdim=keep), [x], kept,
                             f"({{0}} * 3).std({d}, keepdim={keep})")
        if which == 12:
            return self.p.op(lambda L, a: a.logsumexp(d, keepdim=keep), [x], kept,
                             f"{{0}}.logsumexp({d}, keepdim={keep})")
        return self.p.op(lambda L, a: a.prod(d, keepdim=keep), [x], kept,
                         f"{{0}}.prod({d}, keepdim={keep})")

    def op_softmax(self, x):
        d = self.dim(len(self.p.shapes[x]))
        if self.rng.random() < 0.5:
            return self.p.op(lambda L, a: a.softmax(d), [x], self.p.shapes[x],
                             f"{{0}}.softmax({d})")
        return self.p.op(lambda L, a: L.log_softmax(a, dim=d), [x], self.p.shapes[x],
                         f"log_softmax({{0}}, dim={d})")

    def op_matmul(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        m = int(self.rng.integers(1, 5))
        which = self.variant(f"matmul{nd}", (2, 4, 3)[nd - 1])
        dtype = self.p.dtypes[x]  # matmul needs equal dtypes
        if nd == 1:
            if which == 0:  # dot with a vector
                y = self.new_leaf((s[0],), dtype=dtype)
                return self.p.op(lambda L, a, b: a @ b, [x, y], (), "{0} @ {1}")
            y = self.new_leaf((m, s[0]), dtype=dtype)  # matrix @ vector
            return self.p.op(lambda L, a, b: L.matmul(b, a), [x, y], (m,), "matmul({1}, {0})")
        if nd == 2:
            if which == 0:
                y = self.new_leaf((s[1], m), dtype=dtype)
                return self.p.op(lambda L, a, b: a.mm(b), [x, y], (s[0], m), "{0}.mm({1})")
            if which == 1:
                y = self.new_leaf((m, s[0]), dtype=dtype)
                return self.p.op(lambda L, a, b: b @ a, [x, y], (m, s[1]), "{1} @ {0}")
            if which == 2:
                y = self.new_leaf((s[1],), dtype=dtype)
                return self.p.op(lambda L, a, b: L.mv(a, b), [x, y], (s[0],), "mv({0}, {1})")
            y = self.new_leaf((2, s[1], m), dtype=dtype)
            return self.p.op(lambda L, a, b: L.matmul(L.stack([a, a * 2]), b), [x, y],
                             (2, s[0], m), "matmul(stack([{0}, {0} * 2]), {1})")
        if which == 0:
            y = self.new_leaf((s[2], m), dtype=dtype)
            return self.p.op(lambda L, a, b: a @ b, [x, y], (s[0], s[1], m), "{0} @ {1}")
        if which == 1:
            y = self.new_leaf((s[0], s[2], m), dtype=dtype)
            return self.p.op(lambda L, a, b: L.bmm(a, b), [x, y], (s[0], s[1], m),
                             "bmm({0}, {1})")
        return self.p.op(lambda L, a: a @ a.transpose(1, 2), [x], (s[0], s[1], s[1]),
                         "{0} @ {0}.transpose(1, 2)")

    def op_shape(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        which = self.variant("shape", 10)
        if which == 0 and _numel(s) > 1:
            n = _numel(s)
            divs = [k for k in range(1, n + 1) if n % k == 0]
            a = int(self.rng.choice(divs))
            shape = (a, n // a) if self.rng.random() < 0.7 else (a, -1)
            out = (a, n // a)
            return self.p.op(lambda L, t: t.reshape(shape), [x], out, f"{{0}}.reshape{shape}")
        if which == 1 and nd >= 2:
            perm = tuple(int(v) for v in self.rng.permutation(nd))
            return self.p.op(lambda L, t: t.permute(*perm), [x], tuple(s[i] for i in perm),
                             f"{{0}}.permute{perm}")
        if which == 2 and nd >= 2:
            d0, d1 = (int(v) for v in self.rng.choice(nd, 2, replace=False))
            out = list(s)
            out[d0], out[d1] = out[d1], out[d0]
            return self.p.op(lambda L, t: L.transpose(t, d0, d1), [x], out,
                             f"transpose({{0}}, {d0}, {d1})")
        if which == 3 and nd == 2:
            return self.p.op(lambda L, t: t.t(), [x], (s[1], s[0]), "{0}.t()")
        if which == 4 and nd < 4:
            d = int(self.rng.integers(-nd - 1, nd + 1))
            dd = d % (nd + 1)
            return self.p.op(lambda L, t: t.unsqueeze(d), [x], s[:dd] + (1,) + s[dd:],
                             f"{{0}}.unsqueeze({d})")
        if which == 5 and 1 in s:
            if self.rng.random() < 0.5:
                return self.p.op(lambda L, t: t.squeeze(), [x], tuple(n for n in s if n != 1),
                                 "{0}.squeeze()")
            d = s.index(1)
            return self.p.op(lambda L, t: t.squeeze(d), [x], s[:d] + s[d + 1:],
                             f"{{0}}.squeeze({d})")
        if which == 6 and nd >= 2:
            return self.p.op(lambda L, t: t.flatten(1), [x], (s[0], _numel(s[1:])),
                             "{0}.flatten(1)")
        if which == 7 and _numel(s) * 3 <= self.MAX_NUMEL and nd < 4:
            out = tuple(3 if n == 1 else n for n in s)
            if out == s:
                out = (2,) + s
            return self.p.op(lambda L, t: t.expand(*out), [x], out, f"{{0}}.expand{out}")
        if which == 8 and nd >= 2:
            return self.p.op(lambda L, t: t.transpose(0, 1).contiguous(), [x],
                             (s[1], s[0]) + s[2:], "{0}.transpose(0, 1).contiguous()")
        if which == 9 and nd >= 2:
            return self.p.op(lambda L, t: t.mT, [x], s[:-2] + (s[-1], s[-2]), "{0}.mT")
        return self.p.op(lambda L, t: t.reshape(-1), [x], (_numel(s),), "{0}.reshape(-1)")

    def op_index(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        if nd == 0:
            return self.p.op(lambda L, t: t[None], [x], (1,), "{0}[None]")
        which = self.variant("index", 7)
        n0 = s[0]
        if which == 0:
            i = int(self.rng.integers(-n0, n0))
            return self.p.op(lambda L, t: t[i], [x], s[1:], f"{{0}}[{i}]")
        if which == 1:
            a = int(self.rng.integers(0, n0))
            return self.p.op(lambda L, t: t[a:], [x], (n0 - a,) + s[1:], f"{{0}}[{a}:]")
        if which == 2 and nd >= 2:
            i = int(self.rng.integers(0, s[1]))
            return self.p.op(lambda L, t: t[:, i], [x], (s[0],) + s[2:], f"{{0}}[:, {i}]")
        if which == 3:
            k = int(self.rng.integers(1, 5))
            idx = [int(v) for v in self.rng.integers(0, n0, k)]   # repeats allowed
            return self.p.op(lambda L, t: t[L.tensor(idx)], [x], (k,) + s[1:],
                             f"{{0}}[tensor({idx})]")
        if which == 4:
            step = int(self.rng.integers(1, 3))
            return self.p.op(lambda L, t: t[::step], [x], (-(-n0 // step),) + s[1:],
                             f"{{0}}[::{step}]")
        if which == 5:
            i = int(self.rng.integers(0, s[-1]))
            return self.p.op(lambda L, t: t[..., i], [x], s[:-1], f"{{0}}[..., {i}]")
        return self.p.op(lambda L, t: t[None], [x], (1,) + s, "{0}[None]")

    def op_join(self, x):
        s = self.p.shapes[x]
        nd = len(s)
        which = self.variant("join", 5)
        d = int(self.rng.integers(nd))
        splittable = [i for i in range(nd) if s[i] >= 2]
        if which in (2, 4) and splittable:
            d = int(self.rng.choice(splittable))
        if which == 0:
            other = s[:d] + (int(self.rng.integers(1, 3)),) + s[d + 1:]
            y = self.new_leaf(other, dtype=self.p.dtypes[x])
            out = s[:d] + (s[d] + other[d],) + s[d + 1:]
            return self.p.op(lambda L, a, b: L.cat([a, b], d), [x, y], out,
                             f"cat([{{0}}, {{1}}], {d})")
        if which == 1:
            return self.p.op(lambda L, a: L.stack([a, a * 2], d), [x], s[:d] + (2,) + s[d:],
                             f"stack([{{0}}, {{0}} * 2], {d})")
        if which == 2 and s[d] >= 2:
            k = int(self.rng.integers(1, s[d]))
            out = s[:d] + (s[d] - k,) + s[d + 1:]
            return self.p.op(lambda L, a: L.split(a, [k, s[d] - k], d)[1], [x], out,
                             f"split({{0}}, [{k}, {s[d] - k}], {d})[1]")
        if which == 3:
            i = int(self.rng.integers(s[d]))
            return self.p.op(lambda L, a: a.unbind(d)[i], [x], s[:d] + s[d + 1:],
                             f"{{0}}.unbind({d})[{i}]")
        if which == 4 and s[d] >= 2:
            return self.p.op(lambda L, a: a.chunk(2, d)[0], [x],
                             s[:d] + (-(-s[d] // 2),) + s[d + 1:], f"{{0}}.chunk(2, {d})[0]")
        return self.p.op(lambda L, a: L.stack([a, a], 0).sum(0), [x], s,
                         "stack([{0}, {0}], 0).sum(0)")

    def build(self, n_ops):
        x = self.new_leaf(self.random_shape(), requires_grad=True, dtype=self.dtype)
        for _ in range(n_ops):
            for _attempt in range(20):
                mark = (len(self.p.steps), len(self.p.shapes), len(self.p.lines),
                        len(self.p.dtypes))
                y = self.step(x)
                shape = self.p.shapes[y]
                if 0 < _numel(shape) <= self.MAX_NUMEL and len(shape) <= 4:
                    x = y
                    break
                for lst, n in zip((self.p.steps, self.p.shapes, self.p.lines, self.p.dtypes),
                                  mark):
                    del lst[n:]
        return self.p


def _is_broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


N_PROGRAMS = 50


def _program(seed):
    rng = np.random.default_rng(10_000 + seed)
    return Generator(10_000 + seed, seed).build(int(rng.integers(5, 15)))


def _tol(dtype, ref, mixed=False):
    """float32 tolerances for float32 values and for every value of a mixed-dtype
    program (a float64 value computed through float32 intermediates, e.g. a 0-d float64
    operand that does not promote a float32 tensor, is only float32-accurate)."""
    scale = 1.0 + float(np.max(np.abs(ref))) if ref.size else 1.0
    if dtype == "float32" or mixed:
        return dict(rtol=1e-4, atol=2e-5 * scale)
    return dict(rtol=1e-9, atol=1e-11 * scale)


def _np(t):
    return t.detach().numpy()


# seed -> reason: programs that hit a known jitgrad bug (strict: a fix makes them XPASS)
PROGRAM_XFAIL = {}


def _seeds(xfail):
    return [pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=xfail[s]))
            if s in xfail else s for s in range(N_PROGRAMS)]


@pytest.mark.parametrize("seed", _seeds(PROGRAM_XFAIL))
def test_random_program(seed):
    _check_program(seed)


# the same programs in lazy mode (jitgrad.set_mode("lazy")): seed -> reason
LAZY_PROGRAM_XFAIL = PROGRAM_XFAIL


@pytest.mark.parametrize("seed", _seeds(LAZY_PROGRAM_XFAIL))
def test_random_program_lazy(seed, lazy_mode):
    _check_program(seed)


def test_lazy_unbind_piece_values(lazy_mode):
    a = jg.tensor([3.0, 5.0]) * 2
    assert (a.unbind(0)[1] + 1).tolist() == 11.0
    a = jg.tensor([3.0, 5.0]) * 2
    assert (a.unbind(0)[0] + 1).tolist() == 7.0


def _check_program(seed):
    prog = _program(seed)
    out_j, leaves_j = prog.run(jg)
    out_t, leaves_t = prog.run(torch)
    info = str(prog)

    assert tuple(out_j.shape) == tuple(out_t.shape), info
    assert str(out_j.dtype).split(".")[1] == str(out_t.dtype).split(".")[1], info
    ref = _np(out_t)
    mixed = len(set(prog.dtypes)) > 1
    np.testing.assert_allclose(_np(out_j), ref, err_msg=info,
                               **_tol(ref.dtype.name, ref, mixed))
    assert out_j.requires_grad == out_t.requires_grad, info
    assert (out_j.grad_fn is None) == (out_t.grad_fn is None), info
    assert _type_name(out_j.grad_fn) == _type_name(out_t.grad_fn), info

    v = np.random.default_rng(seed).standard_normal(ref.shape).astype(ref.dtype)
    out_j.backward(jg.tensor(v))
    out_t.backward(torch.tensor(v))
    for k, (lj, lt) in enumerate(zip(leaves_j, leaves_t)):
        where = f"{info}\ngradient of leaf #{k}"
        if lt.grad is None:
            assert lj.grad is None, where
            continue
        assert lj.grad is not None, where
        assert str(lj.grad.dtype).split(".")[1] == str(lt.grad.dtype).split(".")[1], where
        g = lt.grad.numpy()
        np.testing.assert_allclose(lj.grad.numpy(), g, err_msg=where,
                                   **_tol(g.dtype.name, g, mixed))


def test_programs_cover_the_pool():
    """The generator reaches every kind of op and both dtypes (guards against a
    generator change that silently stops testing something)."""
    text = "\n".join(str(_program(s)) for s in range(N_PROGRAMS))
    for needle in ("sum(", "mean(", "amax(", "amin(", ".max(", "min(", "var(", "std(",
                   "logsumexp(", "prod(", "softmax(", "log_softmax(", "@", "mm(", "bmm(", "mv(",
                   "matmul(", "reshape", "permute", "transpose(", "unsqueeze(", "squeeze(",
                   "flatten(", "expand", ".t()", ".mT", "[None]", "[::", "[..., ", "[tensor(",
                   "[:, ", "cat(", "stack(", "split(", "unbind(", "chunk(", "maximum(",
                   "minimum(", "where(", "exp(", "log()", "sqrt(", "reciprocal()", "tanh()",
                   "sigmoid(", "relu", "clamp(", "** ", "sin()", "cos(", "keepdim=True",
                   "keepdim=False", "requires_grad=False", "float32", "float64"):
        assert needle in text, needle
    mixed = [s for s in range(N_PROGRAMS) if len(set(_program(s).dtypes)) > 1]
    assert len(mixed) >= 3
    assert sum(len(_program(s).steps) for s in range(N_PROGRAMS)) >= 400


# =====================================================================================
# (a') a table of single ops at awkward points (zeros, ties, boundaries)
# =====================================================================================

X = np.array([[0.0, 1.0, -1.0, 2.0], [2.0, 2.0, 0.0, -3.0]], np.float32)


def _set(t, key, value):
    t[key] = value
    return t


def _views_inplace(t):
    t[1].mul_(3)
    t[:, 0].add_(1)
    return t


# name -> fn(L, x) with x = L.tensor(X, requires_grad=True)
OP_CASES = {
    "abs-at-0": lambda L, x: x.abs(),
    "relu-at-0": lambda L, x: x.relu(),
    "sqrt-at-0": lambda L, x: x.abs().sqrt(),
    "sign": lambda L, x: x.sign(),
    "clamp-at-bounds": lambda L, x: x.clamp(0, 1),
    "clamp-tensor-min": lambda L, x: x.clamp(min=L.zeros(4)),
    "maximum-ties": lambda L, x: L.maximum(x, L.ones(4) * 2),
    "minimum-self": lambda L, x: L.minimum(x, x),
    "amax-ties": lambda L, x: x.amax(1),
    "amax-all-ties": lambda L, x: x.amax(),
    "max-all-ties": lambda L, x: x.max(),
    "max-dim-ties": lambda L, x: x.max(1).values,
    "min-dim0-ties": lambda L, x: x.min(0).values,
    "pow-0": lambda L, x: x ** 0,
    "pow-tensor-0": lambda L, x: x ** L.zeros(4),
    "pow-0-base-tensor": lambda L, x: L.zeros(4) ** x,
    "pow-scalar-base-0": lambda L, x: 0 ** x,
    "pow-0.5": lambda L, x: x ** 0.5,
    "prod-with-zeros": lambda L, x: x.prod(1),
    "prod-all": lambda L, x: x.prod(),
    "prod-dim0": lambda L, x: x.prod(0),
    "log-at-0": lambda L, x: x.abs().log(),
    "reciprocal-at-0": lambda L, x: 1 / x,
    "std-of-one": lambda L, x: x[:, :1].std(1),
    "std-constant": lambda L, x: (x * 0 + 1).std(),
    "var-correction-0": lambda L, x: x.var(1, correction=0),
    "std-unbiased-False": lambda L, x: x.std(1, unbiased=False),
    "logsumexp-inf": lambda L, x: (x * float("inf")).logsumexp(1),
    "logsumexp-tuple": lambda L, x: x.logsumexp((0, 1)),
    "softmax-large": lambda L, x: (x * 100).softmax(1),
    "log_softmax-large": lambda L, x: (x * 100).log_softmax(0),
    "where-scalar": lambda L, x: L.where(x > 0, x, 0.0),
    "masked_fill": lambda L, x: x.masked_fill(x > 0, 2.0),
    "take": lambda L, x: x.take(L.tensor([0, 0, 7])),
    "narrow": lambda L, x: x.narrow(1, 1, 2),
    "index-two-tensors": lambda L, x: x[L.tensor([0, 1, 1]), L.tensor([3, 0, 0])],
    "index-bool-mask": lambda L, x: x[x > 0],
    "index-slice-tensor": lambda L, x: x[:, L.tensor([1, 1, 3])],
    "index-none": lambda L, x: x[None, :, None],
    "index-full-slice": lambda L, x: x[:],
    "index-ellipsis": lambda L, x: x[...],
    "index_select": lambda L, x: x.index_select(1, L.tensor([0, 0])),
    "squeeze-tuple": lambda L, x: x.reshape(1, 2, 1, 4).squeeze((0, 2)),
    "mean-tuple": lambda L, x: x.mean((0, 1)),
    "sum-neg-dims": lambda L, x: x.sum((-1, -2), keepdim=True),
    "tanh-large": lambda L, x: (x * 50).tanh(),
    "sigmoid-large": lambda L, x: (x * 50).sigmoid(),
    "cat-three": lambda L, x: L.cat([x, x[:1], x[1:]], 0),
    "stack-neg-dim": lambda L, x: L.stack([x, x], -1),
    "to-float64": lambda L, x: x.to(L.float64),
    "T": lambda L, x: x.T,
    "mT": lambda L, x: x.mT,
    "expand-minus-1": lambda L, x: x[:, None].expand(-1, 3, -1),
    "split-sizes": lambda L, x: x.split([1, 3], 1)[1],
    "split-one-piece": lambda L, x: x.split(4, 1)[0],
    "chunk-one-piece": lambda L, x: x.chunk(1, 0)[0],
    "unbind-size-1-dim": lambda L, x: x[:1].unbind(0)[0],
    "unbind": lambda L, x: x.unbind(1)[3],
    "rsqrt": lambda L, x: (x.abs() + 1).rsqrt(),
    "rsub": lambda L, x: 1 - x,
    "rdiv": lambda L, x: 2 / (x.abs() + 1),
    "div-floor": lambda L, x: L.div(x, 2, rounding_mode="floor"),
    "remainder": lambda L, x: x % 1.5,
    "matmul-4d-broadcast": lambda L, x: (x.reshape(2, 1, 1, 4)
                                         @ x.reshape(1, 2, 4, 1).expand(2, 2, 4, 1)),
    "matmul-1d-2d": lambda L, x: x[0] @ x.t(),
    "matmul-3d-2d": lambda L, x: x.reshape(1, 2, 4) @ x.t(),
    "matmul-2d-3d": lambda L, x: x @ x.t().reshape(1, 4, 2),
    "matmul-1d-3d": lambda L, x: x[0] @ L.stack([x.t(), x.t()]),
    "matmul-3d-1d": lambda L, x: L.stack([x, x]) @ x[0],
    "reshape-same-shape-noncontiguous": lambda L, x: x.t().reshape(4, 2),
    "clone-then-mul_": lambda L, x: x.clone().mul_(x),
    "clone-then-exp_": lambda L, x: x.clone().exp_(),
    "clone-then-clamp_": lambda L, x: x.clone().clamp_(min=0),
    "clone-then-masked_fill_": lambda L, x: x.clone().masked_fill_(x > 0, 1.0),
    "clone-then-iadd": lambda L, x: x.clone().__iadd__(x),
    "clone-then-copy_": lambda L, x: x.clone().copy_(x[0] * 2),
    "setitem-slice": lambda L, x: _set(x.clone(), (slice(None), 1), x[0, :1] * 3),
    "setitem-int-row": lambda L, x: _set(x.clone(), 0, x[1]),
    "setitem-tensor-index": lambda L, x: _set(x.clone(), (L.tensor([0, 1]), L.tensor([2, 2])),
                                              x[0, :2] * 3),
    "setitem-bool-mask": lambda L, x: _set(x.clone(), x > 0, 0.0),
    "inplace-through-views": lambda L, x: _views_inplace(x.clone()),
}

OP_XFAIL = {
    "matmul-1d-2d": "BUG: vector @ matrix has grad_fn SqueezeBackward1, torch SqueezeBackward4 "
                    "(jitgrad/ops.py matmul, a == 1 and b == 2 branch)",
    "matmul-2d-3d": "BUG: matrix @ batched has grad_fn UnsafeViewBackward0, torch "
                    "CloneBackward0 (jitgrad/ops.py matmul batched branch)",
    "matmul-1d-3d": "BUG: vector @ batched has grad_fn SqueezeBackward1, torch "
                    "UnsafeViewBackward0 (jitgrad/ops.py matmul batched branch, a == 1)",
}


def _type_name(fn):
    return None if fn is None else type(fn).__name__


def _run_case(L, fn):
    x = L.tensor(X.copy(), requires_grad=True)
    out = fn(L, x)
    g = np.arange(out.numel(), dtype=np.float64).reshape(tuple(out.shape)) - 1.5
    if out.requires_grad:
        out.backward(L.tensor(g).to(out.dtype))
    return (out.requires_grad, _type_name(out.grad_fn), out.detach().numpy().astype(np.float64),
            None if x.grad is None else x.grad.numpy().astype(np.float64))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf/nan at the awkward points
@pytest.mark.filterwarnings(r"ignore:std\(\). degrees of freedom:UserWarning")
@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=OP_XFAIL[n]))
    if n in OP_XFAIL else n for n in OP_CASES])
def test_op_case(name):
    rj, nj, oj, gj = _run_case(jg, OP_CASES[name])
    rt, nt, ot, gt = _run_case(torch, OP_CASES[name])
    np.testing.assert_allclose(oj, ot, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert oj.shape == ot.shape
    assert rj == rt
    assert nj == nt
    assert (gj is None) == (gt is None)
    if gt is not None:
        np.testing.assert_allclose(gj, gt, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.xfail(strict=True, reason=(
    "BUG: `b[1] = v * 2` on a clone records CopySlices -> (CloneBackward0, ExpandBackward0); "
    "torch: (CloneBackward0, MulBackward0). jitgrad/ops.py setitem always wraps the value in "
    "expand() even when its shape already matches"))
def test_setitem_graph_structure():
    names = []
    for L in (jg, torch):
        a = L.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = L.tensor(5.0, requires_grad=True)
        b = a.clone()
        b[1] = v * 2
        names.append([_type_name(f) for f, _ in b.grad_fn.next_functions])
    assert names[0] == names[1]


def test_add_scalar_alpha_keeps_float64_precision():
    x = np.array([0.1, -2.3, 7.0])
    out = jg.add(jg.tensor(x), 1.21, alpha=2).numpy()
    ref = torch.add(torch.tensor(x), 1.21, alpha=2).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(jg.sub(jg.tensor(x), 1.21, alpha=3).numpy(),
                               torch.sub(torch.tensor(x), 1.21, alpha=3).numpy(), rtol=1e-15)


def test_mixed_dtype_pow_gradient_precision():
    base = np.array([1.3, 0.7, 2.1], np.float32)
    expo = np.array([0.3, -0.8, 1.7])
    grads = []
    for L in (jg, torch):
        b = L.tensor(base, requires_grad=True)
        e = L.tensor(expo, requires_grad=True)
        (b ** e).sum().backward()
        grads.append(e.grad.numpy())
    exact = base.astype(np.float64) ** expo * np.log(base.astype(np.float64))
    np.testing.assert_allclose(grads[1], exact, rtol=1e-14)  # torch is exact
    np.testing.assert_allclose(grads[0], exact, rtol=1e-14)


# =====================================================================================
# (b) bad input: same exception type, same message (torch. -> jitgrad.), inputs untouched
# =====================================================================================

def F(L, *shape, rg=False, dtype=None):
    """A float tensor with distinct values (0, 1/7, 2/7, ...) of the given shape."""
    n = int(np.prod(shape, dtype=np.int64))
    t = L.tensor((np.arange(n, dtype=np.float32) / 7).reshape(shape), requires_grad=rg)
    return t if dtype is None else t.to(getattr(L, dtype))


def I(L, *values):  # noqa: E743
    return L.tensor(list(values))


def _graph(op):
    """make() for a leaf x and a graph output y = op(x)."""
    def make(L):
        x = F(L, 2, rg=True)
        return x, op(L, x)
    return make


def _after_backward(L):
    x = F(L, 2, rg=True)
    y = (x * x).sum()
    y.backward()
    return x, y


def _modified_saved(L):
    """x and y = exp(x), with y (which ExpBackward0 saved) then changed in place."""
    x, y = _graph(lambda L, x: x.exp())(L)
    y.add_(1)
    return x, y


# id -> (make(L) -> tuple of tensors, call(L, *tensors))
ERROR_CASES = {
    # broadcasting
    "add-broadcast": (lambda L: (F(L, 2, 3), F(L, 4)), lambda L, a, b: a + b),
    "mul-broadcast-3d": (lambda L: (F(L, 2, 3, 4), F(L, 3, 1, 5)), lambda L, a, b: a * b),
    "sub-broadcast": (lambda L: (F(L, 5), F(L, 3)), lambda L, a, b: L.sub(a, b)),
    "where-broadcast": (lambda L: (L.tensor([True, False]), F(L, 3), F(L, 3)),
                        lambda L, c, a, b: L.where(c, a, b)),
    "eq-broadcast": (lambda L: (F(L, 2, 3), F(L, 2)), lambda L, a, b: a == b),
    "add_-broadcast-grows": (lambda L: (F(L, 3), F(L, 2, 3)), lambda L, a, b: a.add_(b)),
    # matrix products
    "matmul-2d": (lambda L: (F(L, 2, 3), F(L, 4, 5)), lambda L, a, b: a @ b),
    "mm-size": (lambda L: (F(L, 2, 3), F(L, 4, 5)), lambda L, a, b: L.mm(a, b)),
    "mm-1d": (lambda L: (F(L, 3), F(L, 3, 5)), lambda L, a, b: L.mm(a, b)),
    "mm-dtype": (lambda L: (F(L, 2, 3), F(L, 3, 2, dtype="float64")), lambda L, a, b: a.mm(b)),
    "bmm-size": (lambda L: (F(L, 2, 3, 4), F(L, 2, 5, 6)), lambda L, a, b: L.bmm(a, b)),
    "bmm-batch": (lambda L: (F(L, 2, 3, 4), F(L, 3, 4, 6)), lambda L, a, b: L.bmm(a, b)),
    "bmm-2d": (lambda L: (F(L, 3, 4), F(L, 3, 4, 6)), lambda L, a, b: L.bmm(a, b)),
    "dot-size": (lambda L: (F(L, 3), F(L, 4)), lambda L, a, b: L.dot(a, b)),
    "dot-2d": (lambda L: (F(L, 3, 2), F(L, 4)), lambda L, a, b: L.dot(a, b)),
    "dot-dtype": (lambda L: (F(L, 3), F(L, 3, dtype="float64")), lambda L, a, b: L.dot(a, b)),
    "mv-size": (lambda L: (F(L, 2, 3), F(L, 4)), lambda L, a, b: L.mv(a, b)),
    "matmul-1d-1d": (lambda L: (F(L, 3), F(L, 4)), lambda L, a, b: a @ b),
    "matmul-2d-1d": (lambda L: (F(L, 2, 3), F(L, 4)), lambda L, a, b: a @ b),
    "matmul-1d-2d": (lambda L: (F(L, 3), F(L, 4, 2)), lambda L, a, b: a @ b),
    "matmul-batched": (lambda L: (F(L, 2, 2, 3), F(L, 2, 4, 2)), lambda L, a, b: a @ b),
    "matmul-0d": (lambda L: (F(L), F(L, 4, 2)), lambda L, a, b: a @ b),
    "matmul-number": (lambda L: (F(L, 2, 2),), lambda L, a: a @ 3),
    # dims
    "sum-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.sum(2)),
    "sum-bad-neg-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.sum(-3)),
    "mean-repeated-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.mean((0, 0))),
    "softmax-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.softmax(5)),
    "transpose-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.transpose(0, 2)),
    "unsqueeze-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.unsqueeze(4)),
    "max-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.max(3)),
    "logsumexp-bad-dim": (lambda L: (F(L, 2, 3),), lambda L, a: a.logsumexp(2)),
    "permute-duplicate": (lambda L: (F(L, 2, 3),), lambda L, a: a.permute(0, 0)),
    "t-3d": (lambda L: (F(L, 2, 3, 4),), lambda L, a: a.t()),
    "flatten-order": (lambda L: (F(L, 2, 3, 4),), lambda L, a: a.flatten(2, 1)),
    # views and reshapes
    "view-non-contiguous": (lambda L: (F(L, 2, 3),), lambda L, a: a.t().view(6)),
    "view-bad-size": (lambda L: (F(L, 2, 3),), lambda L, a: a.view(4)),
    "view-negative-size": (lambda L: (F(L, 2, 3),), lambda L, a: a.view(-2, 3)),
    "reshape-bad-size": (lambda L: (F(L, 2, 3),), lambda L, a: a.reshape(4, 2)),
    "reshape-two-inferred": (lambda L: (F(L, 2, 3),), lambda L, a: a.reshape(-1, -1)),
    "reshape-inferred-bad": (lambda L: (F(L, 2, 3),), lambda L, a: a.reshape(-1, 4)),
    # cat / stack / split
    "cat-sizes": (lambda L: (F(L, 2, 3), F(L, 2, 4)), lambda L, a, b: L.cat([a, b], 0)),
    "cat-ndim": (lambda L: (F(L, 2, 3), F(L, 2)), lambda L, a, b: L.cat([a, b], 0)),
    "cat-bad-dim": (lambda L: (F(L, 2, 3), F(L, 2, 3)), lambda L, a, b: L.cat([a, b], 2)),
    "cat-empty-list": (lambda L: (), lambda L: L.cat([], 0)),
    "stack-sizes": (lambda L: (F(L, 2, 3), F(L, 3, 2)), lambda L, a, b: L.stack([a, b])),
    "stack-empty-list": (lambda L: (), lambda L: L.stack([])),
    "split-sizes-sum": (lambda L: (F(L, 5),), lambda L, a: a.split([2, 2])),
    # expand
    "expand-size": (lambda L: (F(L, 2, 3),), lambda L, a: a.expand(2, 4)),
    "expand-fewer-dims": (lambda L: (F(L, 2, 3),), lambda L, a: a.expand(3)),
    "expand-leading-minus-1": (lambda L: (F(L, 3),), lambda L, a: a.expand(-1, 3)),
    # indexing
    "index-out-of-range": (lambda L: (F(L, 2, 3),), lambda L, a: a[5]),
    "index-out-of-range-dim1": (lambda L: (F(L, 2, 3),), lambda L, a: a[0, 3]),
    "index-negative-out-of-range": (lambda L: (F(L, 2, 3),), lambda L, a: a[-3]),
    "too-many-indices": (lambda L: (F(L, 2, 3),), lambda L, a: a[0, 0, 0]),
    "index-0d": (lambda L: (F(L),), lambda L, a: a[0]),
    "index-float-tensor": (lambda L: (F(L, 2, 3), F(L, 1)), lambda L, a, i: a[i]),
    "index-tensor-out-of-range": (lambda L: (F(L, 2, 3),), lambda L, a: a[L.tensor([0, 5])]),
    "index_select-out-of-range": (lambda L: (F(L, 4, 3),),
                                  lambda L, a: a.index_select(0, L.tensor([4]))),
    "select-out-of-range": (lambda L: (F(L, 4, 3),), lambda L, a: a.select(1, 3)),
    "narrow-out-of-range": (lambda L: (F(L, 4),), lambda L, a: a.narrow(0, 2, 3)),
    "setitem-shape": (lambda L: (F(L, 2, 3), F(L, 4)),
                      lambda L, a, v: a.__setitem__(0, v)),
    "setitem-out-of-range": (lambda L: (F(L, 2, 3),), lambda L, a: a.__setitem__(5, 1.0)),
    # requires_grad and conversions
    "int-requires-grad": (lambda L: (), lambda L: L.tensor([1, 2], requires_grad=True)),
    "int-requires_grad_": (lambda L: (I(L, 1, 2),), lambda L, a: a.requires_grad_()),
    "int-zeros-requires-grad": (lambda L: (),
                                lambda L: L.zeros(2, dtype=L.int64, requires_grad=True)),
    "requires_grad-false-on-non-leaf": (_graph(lambda L, x: x * 2),
                                        lambda L, x, y: setattr(y, "requires_grad", False)),
    "retain_grad-no-grad": (lambda L: (F(L, 2),), lambda L, a: a.retain_grad()),
    "register_hook-no-grad": (lambda L: (F(L, 2),), lambda L, a: a.register_hook(lambda g: g)),
    "item-multi-element": (lambda L: (F(L, 2, 3),), lambda L, a: a.item()),
    "float-multi-element": (lambda L: (F(L, 2),), lambda L, a: float(a)),
    "bool-ambiguous": (lambda L: (F(L, 2),), lambda L, a: bool(a)),
    "if-ambiguous": (lambda L: (F(L, 2),), lambda L, a: 1 if a else 0),
    "numpy-requires-grad": (lambda L: (F(L, 2, rg=True),), lambda L, a: a.numpy()),
    "len-0d": (lambda L: (F(L),), lambda L, a: len(a)),
    "grad-assign-shape": (lambda L: (F(L, 2, rg=True), F(L, 3)),
                          lambda L, a, g: setattr(a, "grad", g)),
    # non-tensor operands
    "add-str": (lambda L: (F(L, 2),), lambda L, a: a + "a"),
    "radd-str": (lambda L: (F(L, 2),), lambda L, a: "a" + a),
    "mul-None": (lambda L: (F(L, 2),), lambda L, a: a * None),
    "pow-str": (lambda L: (F(L, 2),), lambda L, a: a ** "a"),
    "add-function-str": (lambda L: (F(L, 2),), lambda L, a: L.add(a, "a")),
    "exp-list": (lambda L: (), lambda L: L.exp([1.0])),
    "sum-str": (lambda L: (), lambda L: L.sum("a")),
    # backward
    "backward-non-scalar": (_graph(lambda L, x: x * 2), lambda L, x, y: y.backward()),
    "backward-shape": (_graph(lambda L, x: x * 2), lambda L, x, y: y.backward(L.ones(3))),
    "backward-no-grad-fn": (lambda L: (F(L, 2),), lambda L, a: (a * 2).sum().backward()),
    "backward-twice": (_after_backward, lambda L, x, y: y.backward()),
    "backward-modified-saved-output": (_modified_saved, lambda L, x, y: y.sum().backward()),
    "grad-unused": (_graph(lambda L, x: x * 2),
                    lambda L, x, y: L.autograd.grad(y.sum(), [x, F(L, 2, rg=True)])),
    "grad-input-no-grad": (_graph(lambda L, x: x * 2),
                           lambda L, x, y: L.autograd.grad(y.sum(), F(L, 2))),
    # in-place
    "leaf-inplace": (lambda L: (F(L, 2, rg=True),), lambda L, a: a.add_(1)),
    "leaf-view-inplace": (lambda L: (F(L, 2, 3, rg=True),), lambda L, a: a[0].mul_(2)),
    "leaf-setitem": (lambda L: (F(L, 2, 3, rg=True),), lambda L, a: a.__setitem__(0, 1.0)),
    "int-inplace-float": (lambda L: (I(L, 1, 2),), lambda L, a: a.add_(1.5)),
    "int-inplace-float-tensor": (lambda L: (I(L, 1, 2), F(L, 2)), lambda L, a, b: a.mul_(b)),
    # dtypes
    "softmax-int": (lambda L: (I(L, 1, 2, 3),), lambda L, a: a.softmax(0)),
    "log_softmax-int": (lambda L: (I(L, 1, 2, 3),), lambda L, a: a.log_softmax(0)),
    "mean-int": (lambda L: (I(L, 1, 2, 3),), lambda L, a: a.mean()),
    "std-int": (lambda L: (I(L, 1, 2),), lambda L, a: a.std()),
    "var-int": (lambda L: (I(L, 1, 2, 4),), lambda L, a: a.var(0)),
    "where-non-bool": (lambda L: (I(L, 1, 0), F(L, 2), F(L, 2)),
                       lambda L, c, a, b: L.where(c, a, b)),
    "masked_fill-non-bool": (lambda L: (F(L, 2), I(L, 1, 0)),
                             lambda L, a, m: a.masked_fill(m, 0.0)),
    "neg-bool": (lambda L: (L.tensor([True]),), lambda L, a: -a),
    "sub-bool": (lambda L: (L.tensor([True]), L.tensor([False])), lambda L, a, b: a - b),
    "invert-float": (lambda L: (F(L, 2),), lambda L, a: ~a),
    "int-pow-negative": (lambda L: (I(L, 1, 2),), lambda L, a: a ** -1),
    "int-floor-divide-by-zero": (lambda L: (I(L, 1), I(L, 0)), lambda L, a, b: a // b),
    "clamp-no-bounds": (lambda L: (F(L, 2),), lambda L, a: a.clamp()),
    # creation
    "zeros-negative": (lambda L: (), lambda L: L.zeros(-1, 2)),
    "tensor-ragged": (lambda L: (), lambda L: L.tensor([[1, 2], [3]])),
    "arange-step-0": (lambda L: (), lambda L: L.arange(0, 5, 0)),
    "max-empty": (lambda L: (), lambda L: L.zeros(0).max()),
}

ERROR_XFAIL = {
}


def _snapshot(t):
    grad = t.grad if t.is_leaf else None
    return (t.detach().numpy().copy(), t._version if isinstance(t._version, int)
            else t._version[0], t.grad_fn, t.requires_grad,
            None if grad is None else grad.detach().numpy().copy())


def _same_snapshot(a, b):
    return (np.array_equal(a[0], b[0], equal_nan=True) and a[1:4] == b[1:4]
            and ((a[4] is None and b[4] is None)
                 or (a[4] is not None and b[4] is not None and np.array_equal(a[4], b[4]))))


def _raised(L, case):
    make, call = case
    ts = make(L)
    before = [_snapshot(t) for t in ts]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call(L, *ts)
        except Exception as e:  # noqa: BLE001
            return e, ts, before
    return None, ts, before


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=ERROR_XFAIL[n]))
    if n in ERROR_XFAIL else n for n in ERROR_CASES])
def test_bad_input(name):
    et, _, _ = _raised(torch, ERROR_CASES[name])
    assert et is not None, "the case must be an error in torch"
    ej, ts, before = _raised(jg, ERROR_CASES[name])
    assert ej is not None, f"jitgrad did not raise; torch raised {type(et).__name__}: {et}"
    assert type(ej) is type(et), (type(ej), str(ej), type(et), str(et))
    expected = str(et).replace("torch.", "jitgrad.")
    assert str(ej) == expected
    for k, (t, b) in enumerate(zip(ts, before)):
        assert _same_snapshot(_snapshot(t), b), f"input {k} changed by the failed call"


def test_bad_input_table_size():
    assert len(ERROR_CASES) >= 40


# warnings: same category and text (torch's "(Triggered internally at ...)" suffix dropped)
WARNING_CASES = {
    "non-leaf-grad": lambda L: (L.tensor([1.0], requires_grad=True) * 2).grad,
    "tensor-of-tensor": lambda L: L.tensor(L.tensor([1.0])),
    "std-no-degrees-of-freedom": lambda L: L.tensor([[1.0, 2.0]]).std(0),
    "var-no-degrees-of-freedom": lambda L: L.tensor([1.0]).var(),
}
WARNING_XFAIL = {
}


def _warnings(L, fn):
    import re
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(L)
    return [(w.category, re.sub(r" \(Triggered internally at .*\)$", "", str(w.message)))
            for w in caught]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=WARNING_XFAIL[n]))
    if n in WARNING_XFAIL else n for n in WARNING_CASES])
def test_warning(name):
    wt = _warnings(torch, WARNING_CASES[name])
    assert wt, "the case must warn in torch"
    wj = _warnings(jg, WARNING_CASES[name])
    assert wj == [(c, m.replace("torch.", "jitgrad.")) for c, m in wt]


# =====================================================================================
# (c) repr of tensors with requires_grad / grad_fn
# =====================================================================================

REPR_CASES = {
    "leaf-requires-grad": lambda L: L.tensor([1.0, 2.0, 3.0], requires_grad=True),
    "leaf-0d": lambda L: L.tensor(1.5, requires_grad=True),
    "leaf-2d": lambda L: L.tensor([[1.0, 2.0], [3.0, 4.5]], requires_grad=True),
    "leaf-float64": lambda L: L.tensor([1.0, 2.0], dtype=L.float64, requires_grad=True),
    "mul": lambda L: L.tensor([1.0, 2.0], requires_grad=True) * 2,
    "mul-0d": lambda L: L.tensor(1.0, requires_grad=True) * L.tensor(2.0),
    "sum-float64": lambda L: L.tensor([1.0, 2.0], dtype=L.float64, requires_grad=True).sum(),
    "large-values": lambda L: L.arange(12.0).reshape(3, 4).requires_grad_() * 1e5,
    "long-line": lambda L: L.arange(30.0).requires_grad_() * 1.5,
    "summarized": lambda L: L.arange(2000.0).requires_grad_() / 3,
    "inf": lambda L: L.tensor([float("inf"), -1.0], requires_grad=True) + 1,
    "empty": lambda L: L.zeros(0, requires_grad=True),
    "empty-2d": lambda L: L.zeros(2, 0, requires_grad=True),
    "detached": lambda L: (L.tensor([1.0, 2.0], requires_grad=True) * 2).detach(),
    "grad": lambda L: _grad_of_square(L),
    "copyslices": lambda L: _set(L.tensor([1.0, 2.0], requires_grad=True).clone(), 0, 5.0),
    "select": lambda L: L.tensor([[1.0, 2.0]], requires_grad=True)[0],
    "split-tuple": lambda L: L.tensor([1.0, 2.0, 3.0], requires_grad=True).split(2),
    "max-dim-namedtuple": lambda L: L.tensor([[1.0, 2.0]], requires_grad=True).max(1),
    "grad_fn": lambda L: repr(L.tensor([1.0], requires_grad=True).exp().grad_fn).split(" at ")[0],
    "format-0d": lambda L: f"{L.tensor(1.0, requires_grad=True)}|{L.tensor(2.5)}|{L.tensor(3)}",
}


def _grad_of_square(L):
    x = L.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    return x.grad


REPR_XFAIL = {
}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=REPR_XFAIL[n]))
    if n in REPR_XFAIL else n for n in REPR_CASES])
def test_repr(name):
    j = REPR_CASES[name](jg)
    t = REPR_CASES[name](torch)
    assert (j if isinstance(j, str) else repr(j)) == \
        (t if isinstance(t, str) else repr(t)).replace("torch.", "jitgrad.")
