"""The small APIs PyTorch scripts touch on their way to a CPU run: jg.cuda, the default
device, jg.backends and jg.jit.script/trace, with PyTorch's answers and errors."""
import sys
import warnings

import pytest

import jitgrad as jg

NO_CUDA = "jitgrad not compiled with CUDA enabled"
RAISING = ["synchronize", "current_device", "get_device_name", "get_device_capability",
           "get_device_properties"]


@pytest.fixture
def default_device():
    """Tests set the default device; the next test gets the one it had."""
    before = jg.get_default_device()
    yield
    jg.set_default_device(before)


@pytest.fixture
def fresh_warnings():
    """jit.script/trace warn once per process: forget that they have, and restore it."""
    jit_module = sys.modules["jitgrad.jit"]  # jg.jit is the decorator, not the module
    before = set(jit_module._warned)
    jit_module._warned.clear()
    yield
    jit_module._warned.clear()
    jit_module._warned.update(before)


def test_cuda_reports_no_devices():
    assert jg.cuda.is_available() is False
    assert jg.cuda.device_count() == 0
    assert jg.cuda.is_initialized() is False
    assert jg.backends.mps.is_available() is False and jg.backends.mps.is_built() is False
    assert jg.backends.cudnn.is_available() is False
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        assert torch.cuda.device_count() == 0 and torch.backends.mps.is_available() is False


def test_cuda_seeding_is_a_silent_no_op():
    jg.manual_seed(4)
    expected = jg.rand(3).tolist()
    jg.manual_seed(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jg.cuda.manual_seed(123) is None
        assert jg.cuda.manual_seed_all(123) is None
        assert jg.cuda.seed() is None and jg.cuda.seed_all() is None
        assert jg.cuda.empty_cache() is None
    assert jg.rand(3).tolist() == expected  # the CPU generator was not touched
    with pytest.raises(ValueError, match="invalid literal for int"):
        jg.cuda.manual_seed("x")  # as torch.cuda.manual_seed: the seed must be a number


@pytest.mark.parametrize("name", RAISING)
def test_cuda_device_queries_raise_as_torch(name):
    with pytest.raises(AssertionError, match=f"^{NO_CUDA}$"):
        getattr(jg.cuda, name)()
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        with pytest.raises(AssertionError) as raised:
            getattr(torch.cuda, name)()
        assert str(raised.value).replace("Torch", "jitgrad") == NO_CUDA


def test_set_device_raises():
    with pytest.raises(AssertionError, match=NO_CUDA):
        jg.cuda.set_device(0)


def test_default_device(default_device):
    assert jg.get_default_device() == jg.device("cpu")
    jg.set_default_device("cpu")
    assert jg.get_default_device().type == "cpu"
    with pytest.raises(AssertionError, match=f"^{NO_CUDA}$"):
        jg.set_default_device("cuda")
    with pytest.raises(AssertionError, match=f"^{NO_CUDA}$"):
        jg.set_default_device(jg.device("cuda", 0))
    assert jg.get_default_device() == jg.device("cpu")  # a refused request changes nothing
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda device type"):
        jg.set_default_device("tpu")
    jg.set_default_device(None)
    assert jg.get_default_device() == jg.device("cpu")


def test_the_usual_device_preamble_runs_on_the_cpu():
    jg.backends.cudnn.deterministic = True  # scripts set these; nothing changes
    jg.backends.cudnn.benchmark = False
    device = jg.device("cuda" if jg.cuda.is_available() else "cpu")
    model = jg.nn.Linear(2, 1).to(device)
    out = model(jg.ones(4, 2, device=device))
    assert out.shape == (4, 1) and out.device.type == "cpu"
    jg.backends.cudnn.deterministic = False


@pytest.mark.parametrize("kind", ["script", "trace"])
def test_jit_script_and_trace_return_the_module_and_warn_once(kind, fresh_warnings):
    model = jg.nn.Sequential(jg.nn.Linear(3, 2), jg.nn.ReLU())
    convert = getattr(jg.jit, kind)
    args = (jg.ones(1, 3),) if kind == "trace" else ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert convert(model, *args) is model
        assert convert(model, *args) is model
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert messages == [f"jitgrad does not compile TorchScript: jitgrad.jit.{kind} returns "
                        "the module as is (jitgrad.jit(step) captures and replays a training "
                        "step instead)"]
    assert caught[0].filename == __file__  # points at the caller's line


def test_jit_script_as_a_decorator_and_jit_still_captures(fresh_warnings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        @jg.jit.script
        def double(x):
            return x * 2

    assert double(jg.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]

    w = jg.tensor([1.0], requires_grad=True)
    opt = jg.optim.SGD([w], lr=0.1)

    @jg.jit
    def step():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        opt.step()
        return loss.item()

    assert type(step).__name__ == "Jitted"
    losses = [step() for _ in range(4)]
    assert losses == pytest.approx([1.0, 0.64, 0.4096, 0.262144], rel=1e-6)
