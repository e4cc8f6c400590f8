"""Random programs against PyTorch in both modes (the generator: tests/fuzz_torch.py).

Each seed's program runs four times (twice as built, once with one cache-key
knob changed, once more as built) through torch and jitgrad; every run must
agree: errors, values, dtypes, shapes, grad_fn names, gradients. Constructs
with a known, unfixed bug (``fuzz_torch.KNOWN_BROKEN``) are not generated here;
``python -m tests.fuzz_torch --all`` runs them. Skipped without torch.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import jitgrad as jg  # noqa: E402

import fuzz_torch as fz  # noqa: E402  (pytest puts tests/ on sys.path)

SEEDS_PER_MODE = 480
CHUNK = 80


@pytest.fixture
def mode(request):
    previous = jg.get_mode()
    jg.set_mode(request.param)
    yield request.param
    jg.set_mode(previous)


@pytest.mark.parametrize("mode", ["lazy", "eager"], indirect=True)
@pytest.mark.parametrize("start", range(0, SEEDS_PER_MODE, CHUNK))
def test_random_programs_match_torch(mode, start):
    skip = fz.skip_flags(mode)
    found = []
    for seed in range(start, start + CHUNK):
        if seed in fz.UNREDUCED:
            continue
        found += [f"[{cls}]\n{rep}" for cls, rep in fz.check(seed, skip)]
    assert not found, f"{len(found)} mismatches in mode {mode}:\n\n" + "\n\n".join(found[:5])


def test_generator_reaches_the_corners():
    """Guards against a generator change that silently stops testing something."""
    progs = [p for s in range(SEEDS_PER_MODE) for p in fz.programs(s)]
    text = "\n".join(p.text() for p in progs)
    tags = {st[3] for p in progs for st in p.steps}
    for needle in (".transpose(-1, -2)", "[1::2]", ".expand(", "dtype=float32", "dtype=float64",
                   "keepdim=True", "keepdim=False", ".std(", ".var(", ".prod(", ".logsumexp(",
                   ".amax(", ".amin(", ".sum()", "L.tensor([[", "[L.tensor([", "] = ",
                   "L.cat(", "L.stack(", "L.where(", ".clamp(", "@", "softmax(", "log_softmax(",
                   "L.minimum(", "L.maximum(", ".add_(", ".mul_(", ".sub_(", ".clamp_(",
                   ".view(", ".reshape(", ".permute(", ".squeeze(", ".unsqueeze(",
                   ".backward()", ".backward(v)", "L.autograd.grad(", "retain_graph=True"):
        assert needle in text, needle
    for tag in ("inplace:add_ on result", "inplace:mul_ on leaf", "inplace:setitem on view",
                "reduce0d:sum", "index:mask", "index:mask of expanded", "end:backward twice",
                "end:backward() after backward(v)", "0d:view((1,1,1))"):
        assert any(t.startswith(tag) for t in tags), tag
    for what in ("on expanded", "on saved for backward", "on 0-d reduction", "on view of leaf"):
        assert any(t.startswith("inplace:") and t.endswith(what) for t in tags), what
    assert any("mixed dtypes" in t for t in tags)
    # the knob run changes something of each kind a cache key must capture
    changed = {a.changed.split(":")[0] for p, a in map(fz.programs, range(120)) if a.changed}
    for kind in ("dim", "keepdim", "scalar", "slice step", "bool mask", "end",
                 "leaf 1 layout", "leaf 1 dtype"):
        assert kind in changed, kind


def test_flagged_constructs_are_still_generated():
    """Each KNOWN_BROKEN flag names a construct the generator makes with ``--all``."""
    flags = set()
    for s in range(400):
        flags |= fz.build(s).flags
    missing = set(fz.KNOWN_BROKEN) - fz.COMPARE_FLAGS - flags
    assert not missing, missing
    # and none is made while skipped
    for s in range(40):
        assert not fz.build(s, skip=set(fz.KNOWN_BROKEN)).flags & set(fz.KNOWN_BROKEN)


def _outcomes(seed):
    prog = fz.build(seed)
    return prog, fz.outcome(prog, torch, 0), fz.outcome(prog, jg, 0)


def test_compare_finds_each_kind_of_difference():
    """The comparison is not vacuous: a changed value, dtype, grad_fn name, gradient,
    error message or missing error each make a mismatch."""
    seed = next(s for s in range(50) if not fz.build(s).steps[-1][3].startswith("inplace")
                and fz.compare(*_outcomes(s)) is None and _outcomes(s)[1]["error"] is None
                and any(g is not None for _i, g in _outcomes(s)[1]["grads"]))
    prog, t_out, j_out = _outcomes(seed)
    assert fz.compare(prog, t_out, j_out) is None
    last = next(i for i in range(len(prog.steps) - 1, -1, -1)
                if isinstance(j_out["values"][i], dict))

    def changed(edit):
        _p, _t, j = _outcomes(seed)
        edit(j)
        return fz.compare(prog, t_out, j)

    def value(j):
        j["values"][last]["val"] = j["values"][last]["val"] + 1e-2
    assert changed(value)[0].startswith("value")

    def dtype(j):
        j["values"][last]["dtype"] = "float16"
    assert changed(dtype)[0].startswith("dtype")

    def grad_fn(j):
        j["values"][last]["gf"] = "CloneBackward0"
    assert changed(grad_fn)[0].startswith("grad_fn")

    def grad(j):
        k = next(k for k, (_i, g) in enumerate(j["grads"]) if g is not None)
        j["grads"][k][1]["val"] = j["grads"][k][1]["val"] * 1.01 + 1e-3
    assert changed(grad)[0].startswith("gradient value")

    def raised(j):
        j["error"], j["at"] = ("RuntimeError", "boom"), len(prog.steps) - 1
    assert changed(raised)[0].startswith("error ok vs RuntimeError")

    t_err = dict(t_out, error=("RuntimeError", "torch.FloatTensor went wrong"), at=1)
    same = dict(j_out, error=("RuntimeError", "jitgrad.FloatTensor went wrong"), at=1)
    other = dict(j_out, error=("RuntimeError", "went wrong"), at=1)
    assert fz.compare(prog, t_err, same) is None
    assert fz.compare(prog, t_err, other)[0].startswith("error message")


def test_float_tolerances():
    a = np.array([1.0, -2.0], np.float32)
    assert fz._same_values(a, a * (1 + 5e-5), False)
    assert not fz._same_values(a, a * (1 + 1e-3), False)
    b = a.astype(np.float64)
    assert fz._same_values(b, b * (1 + 1e-11), False)
    assert not fz._same_values(b, b * (1 + 1e-8), False)
    assert fz._same_values(np.array([np.nan]), np.array([np.nan]), False)
    assert not fz._same_values(np.array([np.nan]), np.array([0.0]), False)
