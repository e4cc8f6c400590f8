"""Lazy mode against eager mode: same values, gradients and errors; one Program per step."""
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import lazy
from jitgrad.lazy import recorder, trie
from jitgrad.runtime import arenas as runtime_arenas, program as runtime_program


def _train_entries():
    """Every cached training step the trie holds now."""
    entries, stack = [], [trie._ROOT]
    while stack:
        node = stack.pop()
        entries += list((node.train or {}).values())
        stack += list(node.children.values())
    return entries


def _mlp_step(params, x, y, activation="tanh"):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = getattr(h @ params[i] + params[i + 1], activation)()
    out = h @ params[-2] + params[-1]
    loss = ((out - y) ** 2).mean()
    loss.backward()
    return loss


def _init(seed, sizes, batch):
    rng = np.random.default_rng(seed)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
                   (rng.standard_normal(b) * 0.1).astype(np.float32)]
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.standard_normal((batch, sizes[-1])).astype(np.float32)
    return params, x, y


def _train(mode, steps, sizes=(16, 32, 32, 1), batch=32, lr=0.05):
    previous = jg.get_mode()
    jg.set_mode(mode)
    try:
        arrays, x, y = _init(0, sizes, batch)
        params = [jg.tensor(a, requires_grad=True) for a in arrays]
        losses = []
        for _ in range(steps):
            loss = _mlp_step(params, jg.tensor(x), jg.tensor(y))
            losses.append(loss.item())
            with jg.no_grad():
                for p in params:
                    p -= lr * p.grad
                    p.grad = None
        return losses, [p.detach().numpy().copy() for p in params]
    finally:
        jg.set_mode(previous)


def test_training_loop_matches_eager():
    eager_losses, eager_params = _train("eager", 20)
    lazy_losses, lazy_params = _train("lazy", 20)
    np.testing.assert_allclose(lazy_losses, eager_losses, rtol=1e-5)
    for a, b in zip(lazy_params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert lazy_losses[-1] < lazy_losses[0]


def test_repeated_step_reuses_its_program(lazy_mode):
    arrays, x, y = _init(1, (8, 16, 4), 10)
    params = [jg.tensor(a, requires_grad=True) for a in arrays]
    _mlp_step(params, jg.tensor(x), jg.tensor(y))
    before = jg.jit_stats()
    for _ in range(5):
        for p in params:
            p.grad = None
        loss = _mlp_step(params, jg.tensor(x), jg.tensor(y))
    after = jg.jit_stats()
    assert after["lowerings"] == before["lowerings"]
    assert after["cache_hits"] >= before["cache_hits"] + 5
    # one Program per step: the backward (forward and gradients together)
    assert after["programs"] - before["programs"] == 5
    reference = [np.asarray(a) for a in arrays]
    jg.set_mode("eager")
    eager = [jg.tensor(a, requires_grad=True) for a in reference]
    expected = _mlp_step(eager, jg.tensor(x), jg.tensor(y))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    for p, q in zip(params, eager):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_dynamic_structure_gives_eager_gradients_and_stops_lowering(lazy_mode):
    """An RNN-like loop whose length and branches change every iteration."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 4)).astype(np.float32) * 0.5
    u = rng.standard_normal((3, 4)).astype(np.float32)
    lengths = [3, 5, 2, 5, 3, 2, 5, 3]

    def run(mode, length, seed):
        jg.set_mode(mode)
        W = jg.tensor(w, requires_grad=True)
        U = jg.tensor(u, requires_grad=True)
        xs = np.random.default_rng(seed).standard_normal((length, 3)).astype(np.float32)
        h = jg.zeros(4)
        for t in range(length):
            pre = jg.tensor(xs[t]) @ U + h @ W
            h = pre.tanh() if t % 2 == 0 else pre.relu()
        loss = (h * h).sum()
        loss.backward()
        return loss.item(), W.grad.numpy(), U.grad.numpy()

    lowerings = []
    for i, n in enumerate(lengths):
        ours = run("lazy", n, i)
        ref = run("eager", n, i)
        assert ours[0] == pytest.approx(ref[0], rel=1e-5)
        np.testing.assert_allclose(ours[1], ref[1], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(ours[2], ref[2], rtol=1e-4, atol=1e-6)
        lowerings.append(jg.jit_stats()["lowerings"])
    # lengths 3, 5 and 2 were all seen in the first three iterations: nothing new after
    assert lowerings[3:] == [lowerings[2]] * (len(lengths) - 3)


def test_no_grad_section_changes_the_program(lazy_mode):
    """Two steps with equal ops but a detached branch must not share a cached backward."""
    a = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def step(detach):
        b = a * a
        c = b.detach() if detach else b
        loss = (c * a).sum()
        loss.backward()
        g = a.grad.numpy().copy()
        a.grad = None
        return g

    np.testing.assert_allclose(step(False), 3 * np.array([1.0, 4.0, 9.0]))
    np.testing.assert_allclose(step(True), np.array([1.0, 4.0, 9.0]))
    np.testing.assert_allclose(step(False), 3 * np.array([1.0, 4.0, 9.0]))


def test_new_batch_size_compiles_nothing(lazy_mode):
    arrays, _, _ = _init(3, (5, 7, 2), 4)
    params = [jg.tensor(a, requires_grad=True) for a in arrays]
    rng = np.random.default_rng(0)
    _mlp_step(params, jg.randn(4, 5), jg.randn(4, 2))
    compiles = jg.jit_stats()["compiles"]
    for batch in (1, 9, 33):
        for p in params:
            p.grad = None
        x = jg.tensor(rng.standard_normal((batch, 5)).astype(np.float32))
        loss = _mlp_step(params, x, jg.randn(batch, 2))
        assert np.isfinite(loss.item())
    assert jg.jit_stats()["compiles"] == compiles


def test_errors_raise_at_the_call_site_and_change_nothing(lazy_mode):
    a = jg.ones(2, 3, requires_grad=True)
    b = a * 2
    with pytest.raises(RuntimeError, match="must match the size"):
        b + jg.ones(4)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        b @ jg.ones(4, 2)
    assert b._value is None  # nothing was realized to find those errors
    np.testing.assert_array_equal(b.numpy() if not b.requires_grad else b.detach().numpy(),
                                  np.full((2, 3), 2.0, np.float32))


def test_values_are_computed_only_when_needed(lazy_mode):
    x = jg.tensor([1.0, 2.0])
    y = (x * 3).exp()
    assert y._value is None and y.shape == (2,) and y.dtype is jg.float32
    np.testing.assert_allclose(y.numpy(), np.exp([3.0, 6.0]).astype(np.float32), rtol=1e-6)
    assert repr(y) == repr(jg.tensor(np.exp([3.0, 6.0]).astype(np.float32)))


def test_views_alias_storage_after_realization(lazy_mode):
    base = jg.zeros(2, 3)
    row = (base + 1)[0]          # a view of a pending tensor
    parent = row._base
    row.mul_(5)                  # in-place through the view: realizes, then writes through
    np.testing.assert_array_equal(parent.numpy(), [[5, 5, 5], [1, 1, 1]])


def test_pending_work_sees_values_from_before_an_inplace_write(lazy_mode):
    x = jg.tensor([1.0, 2.0])
    y = x * 10              # pending: must use x as it is now
    x.add_(1)
    np.testing.assert_array_equal(y.numpy(), [10.0, 20.0])
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0])


def test_long_chain_realizes_by_itself(lazy_mode, monkeypatch):
    monkeypatch.setattr(recorder, "MAX_OPS", 50)
    x = jg.tensor([0.5])
    for _ in range(120):
        x = x * 1.01
        assert len(lazy._tls.rec.pending) < 50
    assert x.item() == pytest.approx(0.5 * 1.01 ** 120, rel=1e-4)


def test_memory_stays_flat_over_many_steps(lazy_mode):
    """10,000 W1 training steps (nn, SGD, MSE) after warm-up: no per-step growth."""
    import tracemalloc
    nn = jg.nn
    jg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 1))
    opt = jg.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    X, Y = jg.randn(32, 16), jg.randn(32, 1)

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            loss = loss_fn(model(X), Y)
            loss.backward()
            opt.step()
            loss.item()
    steps(50)
    tracemalloc.start()
    steps(500)
    first, _ = tracemalloc.get_traced_memory()
    steps(10_000)
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert second - first < 1_000_000  # bytes: a leak of 100 bytes a step would show


def test_warm_cache_process_compiles_nothing(tmp_path):
    script = textwrap.dedent("""
        import jitgrad as jg
        jg.set_mode("lazy")
        w = jg.randn(8, 4, requires_grad=True)
        loss = (jg.randn(3, 8) @ w).tanh().sum()
        loss.backward()
        print(jg.jit_stats()["compiles"])
    """)
    env = dict(os.environ)
    run = lambda: subprocess.run([sys.executable, "-c", script], capture_output=True,
                                 text=True, env=env, timeout=600)
    first = run()
    assert first.returncode == 0, first.stderr
    second = run()
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "0"


def test_pending_bookkeeping_stays_bounded(lazy_mode):
    x = jg.ones(4, requires_grad=True)
    nodes = None
    for i in range(20_000):
        (x * 2 + 1).sum().item()
        if i == 10:
            nodes = jg.jit_stats()["trie_nodes"]
    assert jg.jit_stats()["trie_nodes"] == nodes  # one path, walked again and again
    assert len(lazy._tls.rec.live) <= 10


def test_repeated_numbers_share_one_input(lazy_mode):
    """`h + 0.5` a hundred times binds one constant, and -0.0 stays distinct from 0.0."""
    x = jg.tensor([1.0, 2.0])
    h = x
    for _ in range(50):
        h = h * 1.0 + 0.5
    assert len(lazy._tls.rec.inputs) == 3  # x, 1.0 and 0.5
    np.testing.assert_array_equal(h.numpy(), np.array([1.0, 2.0]) + 25.0)
    assert (1 / (x * -0.0)).tolist() == [-np.inf, -np.inf]
    assert (1 / (x * 0.0)).tolist() == [np.inf, np.inf]


# --- replayed steps: grad_fns made only when asked for --------------------------------

def _warm_step(w, x):
    loss = ((x * w).tanh() * 3.0).sum()
    return loss


def test_replayed_step_defers_grad_fns_but_shows_them(lazy_mode):
    w = jg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    x = jg.tensor([1.0, 2.0, 3.0])
    for _ in range(3):
        w.grad = None
        loss = _warm_step(w, x)
        loss.backward()
    hits = jg.jit_stats()["cache_hits"]
    w.grad = None
    loss = _warm_step(w, x)
    assert type(loss._grad_fn) is lazy.Pending  # nothing made while recording
    loss.backward()
    assert jg.jit_stats()["cache_hits"] == hits + 1
    expected = 3.0 * (1 - np.tanh(np.array([0.5, -2.0, 6.0])) ** 2) * [1.0, 2.0, 3.0]
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-5, atol=1e-6)
    # the graph is still there to look at, named as PyTorch names it, and freed
    fn = loss.grad_fn
    assert fn.name() == "SumBackward0"
    mul = fn.next_functions[0][0]
    assert mul.name() == "MulBackward0"
    tanh = mul.next_functions[0][0]
    assert tanh.name() == "TanhBackward0"
    assert tanh.next_functions[0][0].next_functions[1][0].variable is w
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


def test_replayed_step_keeps_graph_with_retain_graph(lazy_mode):
    w = jg.tensor([0.5, -1.0], requires_grad=True)
    x = jg.tensor([1.0, 2.0])
    for _ in range(3):
        w.grad = None
        loss = _warm_step(w, x)
        loss.backward(retain_graph=True)
    loss.backward()
    expected = 3.0 * (1 - np.tanh(np.array([0.5, -2.0])) ** 2) * [1.0, 2.0]
    np.testing.assert_allclose(w.grad.numpy(), 2 * expected, rtol=1e-5)


def test_inplace_after_recording_is_caught_on_a_replayed_step(lazy_mode):
    w = jg.tensor([0.5, -1.0], requires_grad=True)
    x = jg.tensor([1.0, 2.0])
    for _ in range(3):
        w.grad = None
        _warm_step(w, x).backward()
    loss = _warm_step(w, x)
    x.mul_(2)  # x * w saved x at version 0 (w's gradient reads it); it is now 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_grad_fn_edges_are_those_seen_when_recorded(lazy_mode):
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        a = x * 2
        y = a + 1
        a.mul_(3)   # a's grad_fn changes; y still reads the a that was
        x.grad = None
        y.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_requires_grad_changed_while_recording(lazy_mode):
    for _ in range(3):
        w = jg.tensor([1.0, 2.0])
        y = w * 3
        w.requires_grad_()
        z = (w * y).sum()   # y was recorded without grad: only the second factor flows
        z.backward()
        np.testing.assert_allclose(w.grad.numpy(), [3.0, 6.0])


def test_input_keys_follow_new_data_and_autograd_flags(lazy_mode):
    """A tensor read in earlier steps keeps a cached input key; `.data =`, requires_grad
    and detach_ must renew it, or a replayed step would trust stale shapes or flags."""
    x, w = jg.ones(3), jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for _ in range(3):
        w.grad = None
        (x * w).sum().backward()
    x.requires_grad_()
    (x * w).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0, 3.0])
    x.data = jg.ones(2)
    with pytest.raises(RuntimeError, match="must match the size of tensor b"):
        x * w
    y = w * 2
    y.detach_()
    z = (y * w).sum()
    z.backward()  # y is a leaf now: only the second factor carries a gradient
    assert y.grad is None


def test_operands_that_trade_places_between_steps_give_their_own_values(lazy_mode):
    """A loop that walks the same op sequence with other tensors in the operands' places
    (equal shapes and flags, so equal keys; an output of another step; an operand read
    earlier in the segment, or first there) must read the tensors it was given, through
    the recorder's hot path (operands checked by place) and its general path alike."""
    rng = np.random.default_rng(0)
    u, v, w = (jg.tensor(rng.standard_normal(4)) for _ in range(3))
    arrays = {id(t): t.numpy().astype(np.float64) for t in (u, v, w)}
    carried = carried_ref = None
    for i in range(12):
        a, b = [(u, v), (v, u), (u, w), (w, w)][i % 4]
        h = a * 1.5  # a bound first
        g = h - b  # b bound at first use, or read where a was bound (w, w)
        k = (g * a).tanh() + (h if i % 3 else g)  # a read again: where it was bound
        if carried is not None and i % 2:
            k = k * carried  # an output of an earlier step: realized, bound by key
        ref = np.tanh((arrays[id(a)] * 1.5 - arrays[id(b)]) * arrays[id(a)])
        ref = ref + (arrays[id(a)] * 1.5 if i % 3 else arrays[id(a)] * 1.5 - arrays[id(b)])
        if carried is not None and i % 2:
            ref = ref * carried_ref
        np.testing.assert_allclose(k.numpy(), ref, rtol=1e-5, atol=1e-6)
        carried, carried_ref = k, ref


def test_inputs_bound_as_the_last_segment_bound_them_are_checked(lazy_mode):
    """A segment binds its inputs (a batch, the parameters) where the last one bound
    them without a lookup only if each is the very tensor bound there last time: a new
    batch of the same shape, a weight swapped for an equal-keyed one, or one tensor in
    two places must each be read as given, forward and backward."""
    rng = np.random.default_rng(1)
    xs = [jg.tensor(rng.standard_normal((3, 4))) for _ in range(2)]
    ws = [jg.tensor(rng.standard_normal((5, 4)), requires_grad=True) for _ in range(2)]
    b = jg.tensor(rng.standard_normal(5), requires_grad=True)
    v = {id(t): t.detach().numpy().astype(np.float64) for t in (*xs, *ws, b)}
    for i in range(10):
        x, w = xs[i % 2 if i < 6 else 0], ws[1 if i == 4 else 0]
        u = ws[1] if i in (3, 8) else w  # the second linear's weight: w again, or another
        for t in (*ws, b):
            t.grad = None
        h = jg.nn.functional.linear(x, w, b).tanh()
        out = jg.nn.functional.linear(h[:, :4], u, b).sum()
        ext = lazy._tls.rec.inputs  # each input bound once, as the general path binds it
        assert len({id(t) for t in ext}) == len(ext) == len({id(x), id(w), id(u), id(b)})
        out.backward()
        h_ref = np.tanh(v[id(x)] @ v[id(w)].T + v[id(b)])
        np.testing.assert_allclose(out.item(), (h_ref[:, :4] @ v[id(u)].T + v[id(b)]).sum(),
                                   rtol=1e-5)
        dh = np.zeros((3, 5))
        dh[:, :4] = np.ones((3, 5)) @ v[id(u)]
        dz = dh * (1 - h_ref ** 2)
        g_w, g_u = dz.T @ v[id(x)], np.ones((5, 3)) @ h_ref[:, :4]
        if u is w:
            np.testing.assert_allclose(w.grad.numpy(), g_w + g_u, rtol=1e-4, atol=1e-5)
        else:
            np.testing.assert_allclose(w.grad.numpy(), g_w, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(u.grad.numpy(), g_u, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(b.grad.numpy(), dz.sum(0) + 3, rtol=1e-4, atol=1e-5)


def test_a_tensor_bound_off_its_last_place_is_not_bound_twice(lazy_mode):
    """The input the last segment bound at a later place (w, after a) comes first this
    time: when the op that read it there comes, it is bound already (one input, read
    twice), not bound again as the last segment's tensor at that place."""
    a, w = jg.tensor([1.0, 2.0, 3.0]), jg.tensor([0.5, -1.0, 2.0])
    for i in range(6):
        first = w if i % 2 else a
        out = (first * 2.0) * w
        ext = lazy._tls.rec.inputs
        assert len({id(t) for t in ext}) == len(ext)
        np.testing.assert_allclose(out.numpy(), first.numpy() * 2.0 * w.numpy())


def test_an_input_array_that_changes_is_placed_again(lazy_mode):
    """A cached step keeps where each input array is read from (in place, or copied in)
    while the same arrays come back; a new array in one place (a new batch each step) is
    placed again alone, whatever its layout: contiguous elsewhere, strided, Fortran-ordered."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((6, 4)).astype(np.float32)
    w = jg.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    w64 = w.detach().numpy().astype(np.float64)
    arrays = [base[:4], base[1:5], base[::-1][:4], np.asfortranarray(base[2:]), base[:4].copy(),
              base[::2, :].repeat(2, axis=0)[:4]]
    for i in range(14):
        a = arrays[i % len(arrays)]
        x = jg.from_numpy(a)
        w.grad = None
        (x @ w).tanh().sum().backward()
        h = np.tanh(a.astype(np.float64) @ w64)
        np.testing.assert_allclose(w.grad.numpy(), a.astype(np.float64).T @ (1 - h ** 2),
                                   rtol=1e-4, atol=1e-5)


def test_batches_sliced_from_a_dataset_share_one_program(lazy_mode):
    """Slices of a computed tensor that needs no gradient are taken at once, so a loop
    over batches ``X[i:i + B]`` records one structure, not one per offset (each with its
    own Program and arena); the slices are views of X, as in eager mode."""
    rng = np.random.default_rng(3)
    X = jg.tensor(rng.standard_normal((40, 3)).astype(np.float32))
    w = jg.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    w64, X64 = w.detach().numpy().astype(np.float64), X.numpy().astype(np.float64)
    lowered = []
    for i in range(0, 40, 8):
        w.grad = None
        xb = X[i:i + 8]
        (xb @ w).tanh().sum().backward()
        h = np.tanh(X64[i:i + 8] @ w64)
        np.testing.assert_allclose(w.grad.numpy(), X64[i:i + 8].T @ (1 - h ** 2),
                                   rtol=1e-4, atol=1e-5)
        lowered.append(jg.jit_stats()["lowerings"])
    assert lowered[1] == lowered[-1]  # the first batch's step lowered; the others reuse it
    xb = X[2:4, 1:]
    assert xb._base is X and xb._version == X._version
    X.mul_(2.0)
    np.testing.assert_allclose(xb.numpy(), 2 * X64[2:4, 1:], rtol=1e-6)
    assert xb._version == X._version == 1


def test_idle_arenas_kept_for_reuse_stay_bounded(lazy_mode, monkeypatch):
    """Each Program keeps its last arena for its next run, but not past ARENA_BYTES in
    all: a structure that changes every step (a sequence's length) would keep one arena
    per structure. A Program whose arena went makes a new one; values stay right."""
    monkeypatch.setattr(runtime_arenas, "ARENA_BYTES", 64 << 10)
    x = jg.tensor(np.linspace(-1, 1, 2048, dtype=np.float32))
    for n in range(1, 41):  # 40 structures, each Program's arena 8 KB or more
        h = x
        for _ in range(n):
            h = (h * 0.5).tanh()
        ref = np.linspace(-1, 1, 2048)
        for _ in range(n):
            ref = np.tanh(ref * 0.5)
        np.testing.assert_allclose(h.numpy(), ref, rtol=1e-5, atol=1e-6)
        del h
    programs, stack = [], [trie._ROOT]
    while stack:
        node = stack.pop()
        stack += node.children.values()
        programs += (node.programs or {}).values()
    kept = [p._last.nbytes for p in programs if p._last is not None]
    assert len(programs) >= 40 and sum(kept) <= (64 << 10) + max(kept)


def test_losses_kept_from_each_step_do_not_keep_its_arena(lazy_mode, monkeypatch):
    """Losses (and with them the outputs they were made from), detached losses, kept in
    lists as training loops log them, keep their values, not each step's arena: a
    detached computed tensor is taken at once (a copy of a small value, no base), not
    recorded into the next step's segment (which would tie every later step to the
    autograd engine); a kept loss's step gives its arena back, its values still asked
    for copied out."""
    made = []
    kept = runtime_program._kept
    monkeypatch.setattr(runtime_program, "_kept", lambda program, arena: (made.append(arena.nbytes),
                                                               kept(program, arena)))
    monkeypatch.setattr(runtime_program, "_GIVE_BACK", 0)  # (small arenas are made anew, as cheaper)
    nn = jg.nn
    jg.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = jg.optim.SGD(model.parameters(), lr=0.1)
    x, y = jg.randn(64, 8), jg.randint(0, 3, (64,))
    losses, detached, outs, values, refs = [], [], [], [], []
    for step in range(30):
        opt.zero_grad()
        out = model(x)
        loss = jg.nn.functional.cross_entropy(out, y)
        loss.backward()
        with jg.no_grad():
            refs.append(model(x).numpy().copy())
        opt.step()
        values.append(loss.item())
        losses.append(loss)
        detached.append(loss.detach())
        outs.append(out)
        if step == 9:
            hits = jg.jit_stats()["cache_hits"]
    assert jg.jit_stats()["cache_hits"] >= hits + 20  # every later step a cached one
    assert len(made) <= 10  # (a few Programs, a few arenas each: not one per step)
    assert [t.item() for t in losses] == values == [t.item() for t in detached]
    assert all(t._base is None and not t.requires_grad for t in detached)  # as PyTorch's
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert losses[-1].grad_fn.name() == "NllLossBackward0"  # the graph is still there


def test_trie_of_ever_new_sequences_stays_bounded(lazy_mode, monkeypatch):
    monkeypatch.setattr(trie, "MAX_TRIE", 300)
    x = jg.tensor([1.0, 2.0])
    rng = np.random.default_rng(0)
    for _ in range(200):  # random op sequences: few prefixes repeat
        h, ref = x, np.array([1.0, 2.0])
        for k in rng.integers(0, 3, size=8):
            h = h * 2.0 if k == 0 else (h + 1.0 if k == 1 else h.tanh())
            ref = ref * 2.0 if k == 0 else (ref + 1.0 if k == 1 else np.tanh(ref))
        np.testing.assert_allclose(h.numpy(), ref, rtol=1e-5)
        assert jg.jit_stats()["trie_nodes"] <= 300 + 16


def test_replayed_step_reuses_dead_backward_buffers(lazy_mode):
    """The backward half of a cached step never hands its temporaries out: their arena
    slots are reused once dead (W5's chain: about 1,070 floats instead of 2,250)."""
    x = jg.randn(8, requires_grad=True)
    w = jg.randn(8)

    def step():
        x.grad = None
        h = x
        for _ in range(25):
            h = ((h * w).tanh() + 0.5) * 0.9 - 0.1
        loss = h.sum()
        loss.backward()
        return loss

    before = set(map(id, _train_entries()))
    for _ in range(3):
        step()
    (entry,) = [e for e in _train_entries() if id(e) not in before]
    assert entry.program.arena_size < 1300  # forward values alone take 8 * 101 + inputs
    # and the gradient is still eager mode's
    grad = x.grad.numpy().copy()
    jg.set_mode("eager")
    step()
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_training_step_reuses_its_arena(lazy_mode):
    """Nothing the runtime keeps may hold a step's arena: a fresh large allocation every
    step would pay its page faults again (W4 went from 5.7 to 9.6 ms that way)."""
    nn = jg.nn
    jg.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = jg.optim.SGD(model.parameters(), lr=0.01)
    x, y = jg.randn(4, 8), jg.randn(4, 1)

    def step():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    for run in (step, jg.jit(step)):
        for _ in range(4):
            run()
        entries = _train_entries()
        arenas = {id(e.program): weakref.ref(e.program._last) for e in entries}  # not held
        for _ in range(3):
            run()
        assert all(e.program._last is arenas[id(e.program)]() for e in entries)


def _sgd_model_step(mode, steps, hook=False, zero=True):
    """Losses, gradients and parameters after ``steps`` SGD steps of a small model.
    ``hook``: True hooks a bias from the start; "late" hooks it (and changes the learning
    rate) after two steps, "rebuilt" builds a new optimizer then."""
    nn = jg.nn
    previous = jg.get_mode()
    jg.set_mode(mode)
    try:
        jg.manual_seed(3)
        model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
        opt = jg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if hook is True:
            model[0].bias.register_hook(lambda g: g * 2)
        x, y = jg.randn(5, 6), jg.randint(0, 3, (5,))
        losses = []
        for i in range(steps):
            if i == 2 and hook == "late":  # after cached steps have run
                model[0].bias.register_hook(lambda g: g * 2)
                opt.param_groups[0]["lr"] = 0.02
            if i == 2 and hook == "rebuilt":
                opt = jg.optim.SGD(model.parameters(), lr=0.03, momentum=0.5)
            if zero:
                opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            grads = [p.grad.numpy().copy() for p in model.parameters()]
            opt.step()
            losses.append(loss.item())
        return losses, grads, [p.detach().numpy().copy() for p in model.parameters()], opt
    finally:
        jg.set_mode(previous)


@pytest.mark.parametrize("hook, zero", [(False, True), (True, True), ("late", True),
                                        ("rebuilt", True), (False, False)],
                         ids=["in place", "hooked leaf", "hooked later", "new optimizer",
                              "accumulating"])
def test_replayed_step_reads_parameters_and_writes_gradients_in_place(hook, zero):
    """A cached step reads the batch and parameters where they live and, after
    zero_grad(), writes gradients straight into its gradient arena; a hook or a
    gradient to add to hands them out instead. Either way: eager mode's numbers."""
    expected = _sgd_model_step("eager", 5, hook, zero)
    losses, grads, params, opt = _sgd_model_step("lazy", 5, hook, zero)
    np.testing.assert_allclose(losses, expected[0], rtol=1e-5)
    for got, want in zip(grads + params, expected[1] + expected[2]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    (arena,) = opt._arenas[0]
    for p in opt.param_groups[0]["params"]:
        assert np.shares_memory(p.grad.numpy(), arena.grad)
    first = opt.param_groups[0]["params"][0]
    entries = [e for e in _train_entries()
               if e._hand is not None and any(t is first for t in e._hand.watched)]
    if hook in (False, "rebuilt") and zero:
        assert entries and all(e._hand.homes is not None for e in entries)
        assert all(not e.program._plan.copies for e in entries)  # batch, parameters


def test_inputs_read_in_place_or_copied_give_eager_values(lazy_mode):
    """A Program reads a contiguous, aligned input of its dtype where it lives and copies
    any other in (a strided or misaligned array from numpy): the values are eager mode's
    either way, and follow the array's contents from step to step."""
    raw = np.zeros(4 * 12 + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, np.float32, count=12, offset=1).reshape(3, 4)
    assert not misaligned.flags.aligned
    base = np.arange(24, dtype=np.float32).reshape(3, 8) / 10
    strided = base[:, ::2]  # one view, its values changed in place from step to step
    w = jg.randn(3, 4, requires_grad=True)

    def run(x):
        w.grad = None
        loss = ((x * w).tanh() * x).sum()
        loss.backward()
        return loss.item(), w.grad.numpy().copy()

    for step in range(3):
        misaligned[...] = np.arange(12).reshape(3, 4) * (step + 1) / 10
        base *= -1
        for array in (misaligned, strided, base[:, 1::2], base[:, :4].copy()):
            got = run(jg.from_numpy(array))
            jg.set_mode("eager")
            try:
                want = run(jg.from_numpy(array))
            finally:
                jg.set_mode("lazy")
            assert got[0] == pytest.approx(want[0], rel=1e-6)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-7)


def test_a_strided_leaf_changed_in_place_is_read_anew(lazy_mode):
    """A Program copies a strided input in on every run, from its memory as it is then:
    a parameter whose array is a transpose, updated in place between steps, is read
    with its new values, not those of a copy made when the Program first ran."""
    w = jg.tensor(np.arange(6.0).reshape(2, 3).T / 4, requires_grad=True)
    assert not w._data.flags.c_contiguous
    t = jg.tensor(np.ones((3, 2)))
    for step in range(4):
        w.grad = None
        loss = ((w - t) * (w - t)).sum()
        loss.backward()
        now = w.detach().numpy()
        assert loss.item() == pytest.approx(((now - 1) ** 2).sum(), rel=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), 2 * (now - 1), rtol=1e-12)
        with jg.no_grad():
            w.mul_(0.5)  # in place: the same strided array


def test_a_leaf_gradient_read_through_a_view_keeps_its_base(lazy_mode):
    """``w.t()`` in the forward makes ``w``'s gradient a view (a transpose) of a backward
    intermediate; a cached step's Program keeps that intermediate's buffer, so later
    gradients (here ``v``'s) never overwrite it."""
    rng = np.random.default_rng(5)
    a = jg.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    w = jg.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    v = jg.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    for _ in range(3):
        w.grad = v.grad = None
        loss = (w.t() * 0.3).sum() + jg.maximum(a, v).sum()
        loss.backward()
        np.testing.assert_allclose(w.grad.numpy(), np.full((3, 4), 0.3), rtol=1e-6)
        np.testing.assert_array_equal(v.grad.numpy(), (v.detach().numpy() > a.numpy()) * 1.0)


def test_cnn_step_is_one_cached_program(lazy_mode):
    """A small CNN (convolution, ReLU, max pooling, flatten, linear, cross-entropy) trains
    as eager mode does, and each step after the first is one cached Program: no op runs
    eagerly, nothing is lowered again."""
    def train(mode, steps=5):
        jg.set_mode(mode)
        try:
            jg.manual_seed(0)
            nn = jg.nn
            model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
            opt = jg.optim.SGD(model.parameters(), lr=0.1)
            x, y = jg.randn(6, 1, 6, 6), jg.tensor([0, 1, 2, 3, 4, 0])
            losses, stats = [], []
            for _ in range(steps):
                opt.zero_grad()
                loss = jg.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                stats.append(jg.jit_stats())
            return losses, [p.detach().numpy() for p in model.parameters()], stats
        finally:
            jg.set_mode("lazy")

    lazy_losses, lazy_params, stats = train("lazy")
    eager_losses, eager_params, _ = train("eager")
    np.testing.assert_allclose(lazy_losses, eager_losses, rtol=1e-5)
    for a, b in zip(lazy_params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for before, after in zip(stats[1:], stats[2:]):
        assert after["programs"] - before["programs"] == 1
        assert after["eager_fallbacks"] == before["eager_fallbacks"]
        assert after["lowerings"] == before["lowerings"]


def test_interpreter_checks_operand_bounds_under_test():
    """The interpreter makes operand views from pointers; with Numba's bounds checks on
    (the tests) an operand outside its buffer raises instead of touching other memory."""
    from jitgrad.kernels.cpu import interpreter as I
    assert I.CHECKED
    arena = np.zeros(8, np.float32)
    row = np.zeros((1, I.WIDTH), np.int64)
    row[0, I.OP], row[0, I.OUT], row[0, I.A], row[0, I.FLAT] = I.COPY, 4, 0, 1
    row[0, I.DIMS:I.DIMS + 4] = (4, 1, 1, 1)
    table = np.zeros((2, 3), np.int64)
    table[1] = (0, 0, 4)  # buffer 1: four elements at the arena's start
    arena[:4] = 1
    I.interpret(row, np.zeros(1), np.zeros(1, np.int64), arena, table)
    assert arena.tolist() == [1] * 8
    row[0, I.OUT] = 6  # four elements from offset 6 of eight
    with pytest.raises(IndexError):
        I.interpret(row, np.zeros(1), np.zeros(1, np.int64), arena, table)
    row[0, I.OUT], row[0, I.A] = 4, (1 << I.EXT) + 1  # from element 1 of the 4 of buffer 1
    with pytest.raises(IndexError):
        I.interpret(row, np.zeros(1), np.zeros(1, np.int64), arena, table)


def test_threads_record_their_own_segments(lazy_mode):
    """Two threads training at once each record into their own segment and get the
    losses a lone run gets; a pending tensor handed to another thread is computed."""
    import threading

    def setup(seed):  # made here, not in the threads: the generator is shared
        nn = jg.nn
        jg.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        opt = jg.optim.SGD(model.parameters(), lr=0.05)
        x = jg.tensor(rng.standard_normal((8, 4)).astype(np.float32))
        y = jg.tensor(rng.standard_normal((8, 1)).astype(np.float32))
        return model, opt, x, y

    def train(parts, steps, out):
        model, opt, x, y = parts
        for _ in range(steps):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            out.append(loss.item())

    alone = {s: [] for s in (1, 2)}
    for s in (1, 2):
        train(setup(s), 300, alone[s])
    together = {s: [] for s in (1, 2)}
    threads = [threading.Thread(target=train, args=(setup(s), 300, together[s]))
               for s in (1, 2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, mid-op included
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert together == alone

    pending = jg.tensor([1.0, 2.0]) * 3  # recorded here, read in another thread
    seen = []
    worker = threading.Thread(target=lambda: seen.append((pending + 1).tolist()))
    worker.start()
    worker.join()
    assert seen == [[4.0, 7.0]]


def test_grad_mode_is_per_thread_while_recording(lazy_mode):
    import threading
    x = jg.ones(2, requires_grad=True)
    seen = []

    def worker():
        with jg.no_grad():
            seen.append((x * 3).requires_grad)
        seen.append((x * 3).requires_grad)
    with jg.no_grad():
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        assert not (x * 2).requires_grad
    assert seen == [False, True]
    assert (x * 2).requires_grad


# --- cached Programs and steps reused only where they compute the same thing ----------

def test_repeated_backward_v_through_a_view(lazy_mode):
    """The gradient of a view of the seed is read from its own buffer on a cached step
    (it shared the seed's arena home, which a seed read in place never fills)."""
    for _ in range(3):
        x = jg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        x.view(3).backward(jg.tensor([1.0, 2.0, 3.0]))
        np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 2.0, 3.0]])
    for _ in range(3):
        x = jg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
        x.t().backward(jg.tensor(np.arange(6.0).reshape(3, 2) + 1))
        np.testing.assert_array_equal(x.grad.numpy(), (np.arange(6.0).reshape(3, 2) + 1).T)


def test_boolean_masks_with_another_count_of_true(lazy_mode):
    x = jg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    for m in ([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]],
              [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
              [[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]]):
        mask = np.array(m, bool)
        x.grad = None
        y = x[jg.tensor(mask)] * 2
        y.sum().backward()
        assert tuple(y.shape) == (int(mask.sum()),)
        np.testing.assert_array_equal(y.detach().numpy(), np.arange(12.0).reshape(3, 4)[mask] * 2)
        np.testing.assert_array_equal(x.grad.numpy(), mask * 2.0)


def test_implicit_gradient_of_a_non_scalar_raises_after_a_cached_step(lazy_mode):
    for _ in range(2):
        x = jg.tensor([0.0, 2.0, 8.0], requires_grad=True)
        y = jg.tensor([5.0, 1.0, 7.0], requires_grad=True)
        (x * y).backward(jg.tensor([2.0, 3.0, 4.0]))
        np.testing.assert_array_equal(x.grad.numpy(), [10.0, 3.0, 28.0])
    x = jg.tensor([0.0, 2.0, 8.0], requires_grad=True)
    y = jg.tensor([5.0, 1.0, 7.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar"):
        (x * y).backward()
    assert x.grad is None


def test_a_long_chain_of_views_is_realized_without_deep_recursion(lazy_mode):
    x = jg.tensor(np.arange(32.0).reshape(4, 8), requires_grad=True)
    h = x
    for _ in range(2000):
        h = h.reshape(8, 4).reshape(4, 8)
    np.testing.assert_array_equal(h.detach().numpy(), np.arange(32.0).reshape(4, 8))
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((4, 8)))
