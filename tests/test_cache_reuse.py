"""Lazy mode reuses a cached Program or training step only where it computes the same thing.

Lazy mode keys what it caches (the trie of recorded ops, each trie node's Programs
and cached training steps) by structure: ops, attributes, where operands come from,
input shapes, dtypes and autograd flags. A key that misses a component silently
reuses the Program of another computation. So every OpInfo sample runs in lazy
mode several times in one process, interleaved: the same sample again (the second
run goes through the cached Program and the cached step), in the other dtype, and
with one thing changed that the key must capture: each attribute in turn (an int
moved by one, a flag flipped, a float changed, a slice's start, stop or step
changed), the values of an index array, a boolean mask with another count of True,
a strided or contiguous input instead of the other, and ``backward()`` instead of
``backward(v)``. Each run must give what eager mode gives for it: values, dtypes,
shapes, gradients, or the same error.

A run reads nothing before its backward pass (reading a value realizes the forward
alone, and the cached step would not be taken); outputs and gradients are read
afterwards.
"""
import dataclasses

import numpy as np
import pytest

import jitgrad as jg
from opinfo import OPS, Idx, as_outputs, make_args

_OPS = {op.name: op for op in OPS}


def _upstream(outs):
    rng = np.random.default_rng(7)
    return [rng.standard_normal(tuple(o.shape)) if o.requires_grad else None for o in outs]


def _run(op, sample, dtype, implicit):
    """What one run shows: ("ok", outputs, gradients) or ("error", type, message)."""
    try:
        args = make_args(jg, sample, dtype, requires_grad=op.differentiable)
        outs = as_outputs(op.op(jg, *args, **sample.kwargs))
        pairs = [(o, g) for o, g in zip(outs, _upstream(outs)) if g is not None]
        if pairs:
            if implicit:
                pairs[0][0].backward()
            else:
                jg.autograd.backward([o for o, _ in pairs],
                                     [jg.tensor(g, dtype=o.dtype) for o, g in pairs])
        shown = [(str(o.dtype), tuple(o.shape), o.detach().numpy().copy()) for o in outs]
        grads = [None if a.grad is None else a.grad.numpy().copy()
                 for a in args if a.dtype.is_floating_point]
        return ("ok", shown, grads)
    except Exception as error:  # noqa: BLE001  (the same error in both modes)
        return ("error", type(error), str(error))


def _same(got, want, what, dtype):
    assert got[0] == want[0], f"{what}: lazy {got}, eager {want}"
    if got[0] == "error":
        assert got[1:] == want[1:], what
        return
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for (gd, gs, gv), (wd, ws, wv) in zip(got[1], want[1]):
        assert (gd, gs) == (wd, ws), f"{what}: output {gd} {gs}, eager {wd} {ws}"
        np.testing.assert_allclose(gv, wv, rtol=rtol, atol=rtol, err_msg=what)
    assert len(got[2]) == len(want[2])
    for k, (g, w) in enumerate(zip(got[2], want[2])):
        assert (g is None) == (w is None), f"{what}: gradient {k}"
        if g is not None:
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol,
                                       err_msg=f"{what}: gradient {k}")


# --- one thing changed ------------------------------------------------------------------

def _changed_values(v):
    """Values of an attribute one step away from ``v`` (each changes one component)."""
    if isinstance(v, bool):
        yield not v
    elif isinstance(v, int):
        yield v + 1
        yield v - 1
    elif isinstance(v, float):
        yield v * 0.5 + 0.25
    elif isinstance(v, slice):
        yield slice((v.start or 0) + 1, v.stop, v.step)
        yield slice(v.start, (v.stop - 1) if v.stop is not None else -1, v.step)
        yield slice(v.start, v.stop, (v.step or 1) + 1)
    elif isinstance(v, (tuple, list)):
        for i, x in enumerate(v):
            if isinstance(x, Idx):
                continue
            for y in _changed_values(x):
                changed = list(v)
                changed[i] = y
                yield type(v)(changed)


def _variants(sample):
    """(label, sample) with one thing changed that a cache key must tell apart."""
    for name, v in sample.kwargs.items():
        for k, w in enumerate(_changed_values(v)):
            kwargs = dict(sample.kwargs, **{name: w})
            yield f"{name}~{k}", dataclasses.replace(sample, kwargs=kwargs)
    for i, a in enumerate(sample.args):
        args = list(sample.args)
        if a.dtype == np.bool_ and a.size:  # another count of True
            flipped = a.copy()
            flipped.flat[0] = not flipped.flat[0]
            args[i] = flipped
        elif a.dtype.kind == "i" and a.size > 1:  # other positions, same shape
            args[i] = a[::-1].copy() if a.ndim else a
        elif a.dtype.kind == "f" and a.ndim and a.shape[-1] > 1:  # strided, or contiguous
            layouts = list(sample.layouts) + [None] * (len(args) - len(sample.layouts))
            layouts[i] = None if layouts[i] else "S"
            yield f"layout{i}", dataclasses.replace(sample, layouts=tuple(layouts))
            continue
        else:
            continue
        yield f"arg{i}", dataclasses.replace(sample, args=tuple(args))


def _plan(op):
    """The runs of one op, interleaved so each follows others it could be mistaken for."""
    runs = []
    for s in op.samples:
        runs += [(s.name, s, "float32", False), (s.name, s, "float64", False)]
    for s in op.samples:
        runs.append((s.name + " again", s, "float32", False))
        for label, v in _variants(s):
            runs.append((f"{s.name} {label}", v, "float32", False))
        runs.append((s.name + " implicit", s, "float32", True))
        runs.append((s.name + " once more", s, "float64", False))
    return runs


@pytest.mark.parametrize("name", sorted(_OPS))
def test_cached_programs_compute_what_eager_mode_computes(name):
    op = _OPS[name]
    runs = _plan(op)
    jg.set_mode("eager")
    want = [_run(op, s, dtype, implicit) for _, s, dtype, implicit in runs]
    jg.set_mode("lazy")
    hits = jg.jit_stats()["cache_hits"]
    for (label, s, dtype, implicit), w in zip(runs, want):
        _same(_run(op, s, dtype, implicit), w, f"{name} {label} ({dtype})", dtype)
    if any(w[0] == "ok" for w in want):
        assert jg.jit_stats()["cache_hits"] > hits  # the repeated runs were served from cache


def test_the_plans_change_every_kind_of_attribute():
    """The variants reach the key components they are meant to test."""
    labels = {label for op in OPS for label, *_ in _plan(op)}
    for needed in ("key~", "dim~", "keepdim~", "min~", "max~", "arg1", "layout0", "implicit"):
        assert any(needed in label for label in labels), needed
    slices = [v for op in OPS for s in op.samples for _, v in _variants(s)
              if any(isinstance(k, slice) for k in v.kwargs.get("key", ()))]
    steps = {k.step for v in slices for k in v.kwargs["key"] if isinstance(k, slice)}
    assert {None, 2, 3} <= steps


def test_a_computed_input_is_not_taken_for_a_leaf_by_a_cached_step():
    """A cached training step hands its gradients to its inputs as leaves: an input of the
    same shape that has a grad_fn (computed by an earlier segment) must send its gradient
    on into its own graph, so it takes another trie path than a leaf."""
    jg.set_mode("lazy")

    def step(x):
        (x * 2.0).sum().backward()

    for _ in range(3):  # filed, then replayed
        x = jg.tensor(np.ones(4, np.float32), requires_grad=True)
        step(x)
        np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 2.0))
    leaf = jg.tensor(np.ones(4, np.float32), requires_grad=True)
    h = leaf * 3.0
    jg.realize(h)
    step(h)
    np.testing.assert_array_equal(leaf.grad.numpy(), np.full(4, 6.0))
