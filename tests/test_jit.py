"""jitgrad.jit: replays equal plain lazy runs; guards and unreplayable steps fall back."""
import numpy as np
import pytest

import jitgrad as jg

nn = jg.nn


pytestmark = pytest.mark.usefixtures("lazy_mode")  # jit replays in lazy mode only


def _mlp(seed=0):
    jg.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def _data(seed, batch=6):
    rng = np.random.default_rng(seed)
    return (jg.tensor(rng.standard_normal((batch, 4)).astype(np.float32)),
            jg.tensor(rng.standard_normal((batch, 1)).astype(np.float32)))


def _runs(make_step, n, jit):
    """Losses and final parameters of ``n`` calls of a fresh step, jitted or not."""
    model, step = make_step()
    if jit:
        step = jg.jit(step)
    losses = [step() for _ in range(n)]
    return losses, [p.detach().numpy().copy() for p in model.parameters()], step


def _closed_step():
    model = _mlp()
    opt = jg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = _data(0)

    def step():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return model, step


def test_replayed_steps_equal_plain_lazy_steps():
    plain, plain_params, _ = _runs(_closed_step, 12, jit=False)
    before = jg.jit_stats()
    jitted, jit_params, step = _runs(_closed_step, 12, jit=True)
    after = jg.jit_stats()
    assert jitted == plain  # bit for bit: the same Programs and kernels run
    for a, b in zip(plain_params, jit_params):
        np.testing.assert_array_equal(a, b)
    assert after["replays"] - before["replays"] >= 9  # two runs captured, then replays
    assert step.why_not() == {}


def test_a_replay_records_no_ops():
    _, step = _closed_step()
    step = jg.jit(step)
    for i in range(4):
        step()
    nodes, lowerings = jg.jit_stats()["trie_nodes"], jg.jit_stats()["lowerings"]
    replays = jg.jit_stats()["replays"]
    for i in range(5):
        step()
    stats = jg.jit_stats()
    assert stats["replays"] == replays + 5
    assert (stats["trie_nodes"], stats["lowerings"]) == (nodes, lowerings)


def test_new_batches_and_new_batch_sizes():
    model = _mlp()
    opt = jg.optim.SGD(model.parameters(), lr=0.05)
    twin = _mlp()
    twin_opt = jg.optim.SGD(twin.parameters(), lr=0.05)

    def train(model, opt, x, y):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    step = jg.jit(lambda x, y: train(model, opt, x, y))
    for i in range(10):
        x, y = _data(i, batch=6 if i < 6 else 3)  # a new batch every call, then a new size
        assert step(x, y) == train(twin, twin_opt, x, y)
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_parameter_given_new_data_is_not_replayed_stale():
    (model, step), (twin, twin_step) = _closed_step(), _closed_step()
    step = jg.jit(step)
    for _ in range(4):
        assert step() == twin_step()
    for m in (model, twin):
        m[0].weight.data = jg.full((8, 4), 0.25)  # new storage: the replay key is gone
    replays = jg.jit_stats()["replays"]
    assert step() == twin_step()
    assert jg.jit_stats()["replays"] == replays  # ran the function again instead
    for _ in range(4):
        assert step() == twin_step()
    assert jg.jit_stats()["replays"] > replays  # and replays again once re-captured


def test_scheduler_steps_are_replayed():
    def make():
        model = _mlp()
        opt = jg.optim.SGD(model.parameters(), lr=0.5)
        sched = jg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        x, y = _data(1)

        def step():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
            return loss.item()
        make.opt = opt
        return model, step
    plain, _, _ = _runs(make, 10, jit=False)
    lr_plain = make.opt.param_groups[0]["lr"]
    jitted, _, step = _runs(make, 10, jit=True)
    assert jitted == plain
    assert make.opt.param_groups[0]["lr"] == lr_plain == 0.5 * 0.5 ** 5
    assert jg.jit_stats()["replays"] > 0 and step.why_not() == {}


@pytest.mark.parametrize("case", ["dropout", "returns tensor", "reads a value"])
def test_steps_that_cannot_replay_still_run_correctly(case):
    def make():
        jg.manual_seed(0)
        layers = [nn.Linear(4, 8), nn.ReLU()]
        if case == "dropout":
            layers.append(nn.Dropout(0.5))
        model = nn.Sequential(*layers, nn.Linear(8, 3))
        opt = jg.optim.SGD(model.parameters(), lr=0.1)
        x, _ = _data(2)

        def step():
            opt.zero_grad()
            out = model(x)
            loss = (out ** 2).mean()
            loss.backward()
            opt.step()
            if case == "returns tensor":
                return loss.detach()
            if case == "reads a value":
                return None if loss.item() > 1e9 else None
            return loss.item()
        return model, step
    jg.manual_seed(5)
    plain, plain_params, _ = _runs(make, 6, jit=False)
    replays = jg.jit_stats()["replays"]
    jg.manual_seed(5)
    jitted, jit_params, step = _runs(make, 6, jit=True)
    assert jg.jit_stats()["replays"] == replays
    assert step.why_not()
    if case == "returns tensor":
        plain, jitted = [t.item() for t in plain], [t.item() for t in jitted]
    assert jitted == plain
    for a, b in zip(plain_params, jit_params):
        np.testing.assert_array_equal(a, b)


def test_eager_mode_runs_the_function():
    _, step = _closed_step()
    jg.set_mode("eager")
    step = jg.jit(step)
    replays = jg.jit_stats()["replays"]
    losses = [step() for _ in range(4)]
    assert jg.jit_stats()["replays"] == replays  # eager mode: the function runs every time
    assert losses[0] > losses[-1]


def test_cross_entropy_steps_replay_with_new_labels():
    def make():
        jg.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = jg.optim.Adam(model.parameters(), lr=0.01)

        def step(x, labels):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
            return loss.item()
        return model, step
    (model, plain), (twin, jitted) = make(), make()
    jitted = jg.jit(jitted)
    rng = np.random.default_rng(0)
    replays = jg.jit_stats()["replays"]
    for i in range(8):
        x, _ = _data(i)
        labels = jg.tensor(rng.integers(0, 3, 6))  # the positions read follow the labels
        assert jitted(x, labels) == plain(x, labels)
    assert jg.jit_stats()["replays"] >= replays + 5
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        jitted(x, jg.tensor([0, 1, 7, 0, 1, 2]))  # checked on replay, raised by the function


def test_evaluation_under_no_grad_replays():
    jg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def evaluate(x, labels):
        with jg.no_grad():
            out = model(x)
            return nn.functional.cross_entropy(out, labels).item(), (out * 2).sum().item()
    jitted = jg.jit(evaluate)
    rng = np.random.default_rng(0)
    replays = jg.jit_stats()["replays"]
    for _ in range(8):
        x, labels = jg.randn(5, 4), jg.tensor(rng.integers(0, 3, 5))
        assert jitted(x, labels) == evaluate(x, labels)
    assert jg.jit_stats()["replays"] >= replays + 4


def test_module_attribute_changes_end_a_replay():
    """A replay does not run the function, so anything it may read from a module
    (a replaced parameter object, a plain attribute) must send it back to capture."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 1)
            self.scale = 2.0

        def forward(self, x):
            return self.lin(x) * self.scale

    jg.manual_seed(0)
    model = Scaled()
    x, _ = _data(3)
    step = jg.jit(lambda: model(x).sum().item())
    for _ in range(4):
        step()
    model.scale = 3.0
    assert step() == model(x).sum().item()
    model.lin.weight = nn.Parameter(jg.ones(1, 4))
    assert step() == model(x).sum().item()
    model.train()  # setting an attribute to the value it has changes nothing
    replays = jg.jit_stats()["replays"]
    for _ in range(4):
        step()
    assert jg.jit_stats()["replays"] > replays


def test_gradients_cleared_by_assignment_are_cleared_on_replay():
    """``p.grad = None`` inside the step is replayed: gradients must not pile up."""
    def make():
        jg.manual_seed(0)
        w = jg.randn(6, requires_grad=True)
        x = jg.randn(6)

        def step():
            w.grad = None
            loss = ((x * w).tanh() * 3.0).sum()
            loss.backward()
            return loss.item()
        return w, step
    (w, plain), (v, jitted) = make(), make()
    jitted = jg.jit(jitted)
    replays = jg.jit_stats()["replays"]
    for _ in range(6):
        assert jitted() == plain()
        np.testing.assert_array_equal(v.grad.numpy(), w.grad.numpy())
    assert jg.jit_stats()["replays"] > replays


def test_python_reading_a_value_is_not_replayed():
    """A step whose Python reads a tensor's values (gradient clipping by hand, printing)
    keeps running: a replay would skip what Python does with them."""
    jg.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = jg.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data(4)

    def step():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        norm = float(np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in model.parameters())))
        if norm > 0.5:
            for p in model.parameters():
                p.grad.numpy()[...] *= 0.5 / norm
        opt.step()
        return loss.item()
    jitted = jg.jit(step)
    replays = jg.jit_stats()["replays"]
    for _ in range(6):
        jitted()
    assert jg.jit_stats()["replays"] == replays
    assert "read" in next(iter(jitted.why_not().values()))
