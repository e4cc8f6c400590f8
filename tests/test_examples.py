"""PyTorch-style example scripts (``tests/examples/``) run unchanged on jitgrad.

Each script is written with ``import torch`` and exposes ``main(...)`` returning
its losses. Here each is imported twice: once with ``jitgrad.as_torch``'s finder
installed (so its ``torch`` is jitgrad, run in this pass's mode) and, where
PyTorch is importable, once more with real PyTorch. The jitgrad run must lower
its loss; the two runs start from the same numbers (data and weights drawn from
numpy) and their losses must agree step by step.

Also here: the ``jitgrad.as_torch`` finder itself (module mapping, the error for
a missing submodule, install/uninstall, never installed by ``import jitgrad``)
and its command line.
"""
import importlib
import importlib.util
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import as_torch

EXAMPLES = Path(__file__).parent / "examples"
REPO = Path(__file__).parent.parent

try:
    import torch as real_torch
except ImportError:
    real_torch = None

needs_torch = pytest.mark.skipif(real_torch is None, reason="PyTorch is not installed")

# name: (main's arguments for the test, relative tolerance against PyTorch, why that
# tolerance, the factor the last quarter's mean loss must fall under the first quarter's).
CASES = {
    # float32 throughout: reductions summed in another order (jitgrad accumulates in
    # float64) differ by a few ulp a step, and the updates carry that over; 1e-5 is
    # ~100 float32 ulp after 100 steps.
    "polynomial_autograd": (dict(steps=100), 1e-5, 0.2),
    "polynomial_nn": (dict(steps=100), 1e-5, 0.2),
    "polynomial_optim": (dict(steps=100), 1e-5, 0.6),
    # The graph changes every step (random.randint, seeded alike in both runs).
    "dynamic_net": (dict(steps=40), 1e-5, 0.95),
    "char_mlp": (dict(epochs=3, shuffle=False), 1e-5, 0.85),
    # float64 and L-BFGS: its line of steps follows each loss and gradient, and in
    # float64 those agree to ~1e-13.
    "lstm_sine": (dict(steps=1), 1e-10, 0.3),
    # The smooth-L1 loss is a small difference (~0.7) of predictions of size ~1e2
    # (features up to x^4): float32 rounding of the predictions is amplified ~100x
    # in it, measured 1.4e-5 relative after 100 steps.
    "regression": (dict(steps=100), 1e-4, 0.5),
}


def load_example(name, with_jitgrad):
    """Import ``examples/<name>.py`` afresh; its ``torch`` is jitgrad if ``with_jitgrad``."""
    kind = "jitgrad" if with_jitgrad else "torch"
    spec = importlib.util.spec_from_file_location(f"_example_{name}_{kind}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    if with_jitgrad:
        as_torch.install()
    try:
        spec.loader.exec_module(module)
    finally:
        if with_jitgrad:
            as_torch.uninstall()
    return module


@pytest.fixture(autouse=True)
def restore_globals():
    """Put back what the examples change beyond conftest's settings: Python's
    ``random``, PyTorch's generator and thread count; check the finder is gone."""
    py_state = random.getstate()
    if real_torch is not None:
        torch_state = real_torch.random.get_rng_state()
        threads = real_torch.get_num_threads()
        # One thread: on a small shared machine PyTorch's thread pool makes the
        # LSTM example 5-30x slower; the numbers do not change.
        real_torch.set_num_threads(1)
    yield
    random.setstate(py_state)
    if real_torch is not None:
        real_torch.random.set_rng_state(torch_state)
        real_torch.set_num_threads(threads)
    assert not as_torch.installed()
    assert not any(isinstance(f, as_torch.TorchToJitgrad) for f in sys.meta_path)
    assert real_torch is None or sys.modules.get("torch") is real_torch


def run_main(name, with_jitgrad, **kwargs):
    module = load_example(name, with_jitgrad)
    expected = jg if with_jitgrad else real_torch
    assert module.torch is expected, f"{name}.py imported {module.torch!r}"
    losses = module.main(verbose=False, **kwargs)
    assert losses and all(isinstance(v, float) for v in losses), losses
    return np.array(losses)


def assert_goes_down(name, losses, factor):
    assert np.all(np.isfinite(losses)), losses
    q = max(1, len(losses) // 4)
    first, last = losses[:q].mean(), losses[-q:].mean()
    assert last < factor * first, (
        f"{name}: mean loss of the last quarter {last:.6g} is not under {factor} x the "
        f"first quarter's {first:.6g}")


_jitgrad_losses = {}


def jitgrad_losses(name):
    """The jitgrad run's losses for ``CASES[name]`` (run once, shared by the two tests)."""
    if name not in _jitgrad_losses:
        _jitgrad_losses[name] = run_main(name, True, **CASES[name][0])
    return _jitgrad_losses[name].copy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_trains(name):
    _jitgrad_losses.pop(name, None)
    assert_goes_down(name, jitgrad_losses(name), CASES[name][2])


@needs_torch
@pytest.mark.parametrize("name", sorted(CASES))
def test_example_matches_torch(name):
    kwargs, rtol, _ = CASES[name]
    losses = jitgrad_losses(name)
    reference = run_main(name, False, **kwargs)
    assert losses.shape == reference.shape
    np.testing.assert_allclose(losses, reference, rtol=rtol, atol=0,
                               err_msg=f"{name}: jitgrad's losses vs PyTorch's, step by step")
    print(f"{name}: {len(losses)} losses, max |jitgrad - torch| = "
          f"{np.abs(losses - reference).max():.3g} "
          f"(relative {np.max(np.abs(losses - reference) / np.abs(reference)):.3g})")


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == set(CASES)


def char_mlp_greedy_text(with_jitgrad):
    module = load_example("char_mlp", with_jitgrad)
    model, chars, _ = module.train(epochs=2, shuffle=False, verbose=False)
    return module.generate(model, chars)


def test_char_mlp_shuffled_and_sampled():
    """``shuffle=True`` serves the batches in another order and still trains; greedy
    sampling continues the prompt."""
    losses = run_main("char_mlp", True, epochs=2)
    unshuffled = run_main("char_mlp", True, epochs=2, shuffle=False)
    assert not np.allclose(losses, unshuffled), "shuffle=True served the batches in order"
    assert_goes_down("char_mlp", losses, 0.85)
    text = char_mlp_greedy_text(True)
    assert text.startswith("it ") and len(text) == 43 and text != "it " + text[3] * 40


@needs_torch
def test_char_mlp_shuffled_and_sampled_as_torch():
    """The libraries' generators shuffle differently, so shuffled runs are compared only
    by their last epoch's mean loss, within 15%; greedy text after unshuffled training
    is the same."""
    losses = run_main("char_mlp", True, epochs=2)
    reference = run_main("char_mlp", False, epochs=2)
    n = len(losses) // 2
    assert abs(losses[-n:].mean() - reference[-n:].mean()) < 0.15 * reference[-n:].mean()
    assert char_mlp_greedy_text(True) == char_mlp_greedy_text(False)


# ---- the finder ----------------------------------------------------------------------

def test_finder_maps_torch_names_to_jitgrad():
    saved = {k: v for k, v in sys.modules.items() if k == "torch" or k.startswith("torch.")}
    as_torch.install()
    try:
        assert as_torch.installed()
        assert isinstance(sys.meta_path[0], as_torch.TorchToJitgrad)
        import torch
        import torch.autograd
        import torch.nn as nn
        import torch.nn.functional as F
        from torch import optim
        from torch.utils.data import DataLoader
        assert torch is jg
        assert nn is jg.nn and F is jg.nn.functional and optim is jg.optim
        assert torch.autograd is jg.autograd
        assert DataLoader is importlib.import_module("jitgrad.utils.data").DataLoader
        assert sys.modules["torch.utils.data"] is sys.modules["jitgrad.utils.data"]
        # The import system's torch spec is not left on jitgrad's modules.
        assert jg.__spec__.name == "jitgrad" and jg.nn.__spec__.name == "jitgrad.nn"
        assert all(sys.modules.get(k) is not v for k, v in saved.items())
        with pytest.raises(ModuleNotFoundError) as info:
            import torch.distributions  # noqa: F401
        assert info.value.name == "torch.distributions"
        assert "'torch.distributions'" in str(info.value)
        assert "'jitgrad.distributions'" in str(info.value)
        as_torch.install()                       # twice is once
        assert sum(isinstance(f, as_torch.TorchToJitgrad) for f in sys.meta_path) == 1
    finally:
        as_torch.uninstall()
    assert not as_torch.installed()
    assert not any(isinstance(f, as_torch.TorchToJitgrad) for f in sys.meta_path)
    assert {k: v for k, v in sys.modules.items()
            if k == "torch" or k.startswith("torch.")} == saved
    assert jg.__spec__.name == "jitgrad"


def test_import_jitgrad_does_not_install_the_finder():
    code = ("import sys, jitgrad, jitgrad.nn, jitgrad.optim\n"
            "print('jitgrad.as_torch' in sys.modules,"
            " any(type(f).__name__ == 'TorchToJitgrad' for f in sys.meta_path))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_command_line_runs_a_script_unchanged(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys
        import torch
        import torch.nn as nn
        from torch import optim
        import helper                       # from the script's own folder

        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        opt = optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.ones(4, 2), torch.zeros(4, 1)
        losses = []
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        print(torch.__name__, __name__, sys.argv[1:], helper.VALUE, losses[-1] < losses[0])
    """))
    (tmp_path / "helper.py").write_text("VALUE = 42\n")
    out = subprocess.run([sys.executable, "-m", "jitgrad.as_torch", str(script), "a", "--b"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jitgrad", "__main__", "['a',", "'--b']", "42", "True"]

    bad = tmp_path / "bad.py"
    bad.write_text("import torch.distributions\n")
    out = subprocess.run([sys.executable, "-m", "jitgrad.as_torch", str(bad)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1
    assert ("ModuleNotFoundError: No module named 'torch.distributions' "
            "(jitgrad.as_torch resolves") in out.stderr
    assert "'jitgrad.distributions'" in out.stderr

    out = subprocess.run([sys.executable, "-m", "jitgrad.as_torch"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and "usage: python -m jitgrad.as_torch" in out.stderr
