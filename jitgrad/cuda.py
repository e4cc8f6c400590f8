"""``jitgrad.cuda``: what ``torch.cuda`` answers on a machine without CUDA.

jitgrad's tensors live on the CPU (a numba.cuda backend is planned), so this
module reports no devices, and its functions behave as PyTorch's do when
PyTorch is built without CUDA: seeding is a silent no-op, and anything that
needs a device raises ``AssertionError("jitgrad not compiled with CUDA
enabled")``. Scripts that guard with ``jg.cuda.is_available()`` take their CPU
path unchanged.

The default device lives here too: it can only be the CPU until CUDA is real.
"""
from .tensor import device as _device

_NO_CUDA = "jitgrad not compiled with CUDA enabled"


def _lazy_init():
    raise AssertionError(_NO_CUDA)


def is_available():
    """Whether a CUDA device can be used: always False (tensors live on the CPU)."""
    return False


def is_initialized():
    """Whether CUDA state has been initialised: always False."""
    return False


def device_count():
    """The number of CUDA devices: 0."""
    return 0


def manual_seed(seed):
    """Seed the current CUDA device's generator: nothing to seed without CUDA (silent, as
    PyTorch's is)."""
    int(seed)  # PyTorch rejects what is not a number even when it has no device to seed


def manual_seed_all(seed):
    """Seed every CUDA device's generator: nothing to seed without CUDA (silent)."""
    int(seed)


def seed():
    """Seed the current CUDA device's generator randomly: nothing to seed (silent)."""


def seed_all():
    """Seed every CUDA device's generator randomly: nothing to seed (silent)."""


def empty_cache():
    """Release cached CUDA memory: there is none (silent, as PyTorch's is without CUDA)."""


def synchronize(device=None):
    """Wait for a CUDA device's work to finish; raises, as there is no device."""
    _lazy_init()


def current_device():
    """The index of the selected CUDA device; raises, as there is none."""
    _lazy_init()


def set_device(device):
    """Select a CUDA device; raises, as there is none."""
    _lazy_init()


def get_device_name(device=None):
    """A CUDA device's name; raises, as there is none."""
    _lazy_init()


def get_device_capability(device=None):
    """A CUDA device's compute capability; raises, as there is none."""
    _lazy_init()


def get_device_properties(device=None):
    """A CUDA device's properties; raises, as there is none."""
    _lazy_init()


_default_device = _device("cpu")


def set_default_device(device):
    """Set the device factory functions create tensors on; only ``"cpu"`` (or ``None``,
    which resets to it) is possible: a ``"cuda"`` request raises."""
    global _default_device
    d = _device("cpu" if device is None else device)
    if d.type == "cuda":
        _lazy_init()
    _default_device = d


def get_default_device():
    """The device factory functions create tensors on: ``device(type='cpu')``."""
    return _default_device
