"""jitgrad: PyTorch-style autograd whose kernels are Numba-compiled native code.

``import jitgrad as jg`` and use it as you would ``torch``: tensors, autograd,
the same names, defaults and error messages.
"""
import builtins as _builtins
import math as _math
import numbers as _numbers
import os as _os

from . import autograd
from . import _methods  # noqa: F401  (binds Tensor methods and operators)
from ._tensor_str import get_printoptions, printoptions, set_printoptions
from .autograd import (enable_grad, inference_mode, is_grad_enabled, no_grad,
                       set_grad_enabled)
from .lazy import get_mode, jit_stats, set_mode
from .jit import jit
from .dtypes import (bool_ as bool, dtype, float32, float64, get_default_dtype, int32, int64,
                     promote_types, set_default_dtype)
from .ops import *  # noqa: F401,F403
from .ops import (abs, all, any, max, min, pow, sum)  # noqa: F401  (shadow builtins on purpose)
from .random import (Generator, manual_seed, multinomial, rand, rand_like, randint,
                     randint_like, randn, randn_like, randperm)
from .tensor import (Size, Tensor, arange, as_tensor, device, empty, empty_like, eye,
                     from_numpy, full, full_like, linspace, ones, ones_like, tensor, zeros,
                     zeros_like)
from . import nn, optim  # noqa: E402  (nn and optim build on the names above)
from .serialization import load, save
from .tensor import result_type as _result_type
from . import backends, cuda, utils  # noqa: E402
from . import viz  # noqa: E402  (jg.viz.draw: pictures of the backward graph)
from .cuda import get_default_device, set_default_device  # noqa: E402

float = float32
double = float64
long = int64
int = int32
__version__ = "0.1.0"
pi, e, inf, nan = _math.pi, _math.e, _math.inf, _math.nan

_num_threads = []  # the count ``set_num_threads`` was last given, if it was called


def get_num_threads():
    """The thread count, as ``torch.get_num_threads``: the number last given to
    ``set_num_threads``; before that, the most threads a loaded BLAS library uses (asked
    through threadpoolctl when it is installed), else the CPU count. jitgrad's own
    kernels run on one thread whatever this says; only BLAS (matrix products) may use more.
    """
    if _num_threads:
        return _num_threads[0]
    try:
        from threadpoolctl import threadpool_info
        counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:
        counts = []
    return _builtins.max(counts) if counts else (_os.cpu_count() or 1)


def set_num_threads(int):  # (PyTorch's parameter name)
    """Set the thread count, as ``torch.set_num_threads``. jitgrad's own kernels are
    single-threaded, so they are unaffected; the number limits the BLAS libraries behind
    matrix products (``mm``, ``matmul``, ``linear``, ``conv2d``: numpy's and SciPy's
    OpenBLAS, which Numba's ``np.dot`` calls) through threadpoolctl when it is installed
    (without it, nothing changes), and ``get_num_threads`` returns it afterwards."""
    n = int
    if not isinstance(n, _numbers.Integral):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS np.dot calls in kernels)
        except ImportError:
            pass
        threadpool_limits(limits=_builtins.int(n), user_api="blas")
    _num_threads[:] = [_builtins.int(n)]


def FloatTensor(*args):
    """A float32 tensor from data or a size, as ``torch.FloatTensor``."""
    return Tensor(*args)


def DoubleTensor(*args):
    return FloatTensor(*args).double()


def LongTensor(*args):
    if len(args) == 1 and not isinstance(args[0], (__builtins__["int"] if isinstance(
            __builtins__, dict) else __builtins__.int)):
        return tensor(args[0], dtype=int64)
    return zeros(*args, dtype=int64)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def numel(input):
    return input.numel()


def result_type(tensor1, tensor2):
    return _result_type(tensor1, tensor2)


def realize(*tensors):
    """Compute pending (lazy) tensors now, all in one Program; returns them."""
    from .lazy import realize as _realize
    _realize(*tensors)
    return tensors[0] if len(tensors) == 1 else tensors
