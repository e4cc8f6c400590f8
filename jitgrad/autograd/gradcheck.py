"""``gradcheck``/``gradgradcheck``: analytic gradients against central differences.

As in PyTorch, inputs should be float64; every input that requires grad is
perturbed element by element with step ``eps``, and the numerical Jacobian is
compared with the one autograd builds row by row from unit output gradients.
"""
import numpy as np

from .engine import grad as _grad


class GradcheckError(RuntimeError):
    """Raised by ``gradcheck`` when analytic and numerical Jacobians differ."""


def _outputs(fn, inputs):
    from ..tensor import Tensor
    out = fn(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _numerical(fn, inputs, wrt, eps):
    """Jacobian blocks d out_j / d wrt_i by central differences, shape (numel_in, numel_out)."""
    # values are perturbed in the storage directly (no version bump), and ``fn`` runs with
    # grad mode as the caller has it: gradgradcheck's ``fn`` itself calls autograd.grad
    outs = _outputs(fn, inputs)
    jac = [[np.zeros((x.numel(), o.numel())) for o in outs] for x in wrt]
    for i, x in enumerate(wrt):
        data = x._data
        for k, pos in enumerate(np.ndindex(*data.shape)):
            orig = data[pos].copy()
            data[pos] = orig + eps
            plus = [o._data.astype(np.float64).ravel().copy() for o in _outputs(fn, inputs)]
            data[pos] = orig - eps
            minus = [o._data.astype(np.float64).ravel().copy() for o in _outputs(fn, inputs)]
            data[pos] = orig
            for j in range(len(outs)):
                jac[i][j][k] = (plus[j] - minus[j]) / (2 * eps)
    return jac


def _analytical(fn, inputs, wrt):
    from ..tensor import zeros_like
    outs = _outputs(fn, inputs)
    jac = [[np.zeros((x.numel(), o.numel())) for o in outs] for x in wrt]
    for j, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for k in range(o.numel()):
            v = zeros_like(o)
            v._data.reshape(-1)[k] = 1
            grads = _grad(o, wrt, v, retain_graph=True, allow_unused=True)
            for i, g in enumerate(grads):
                if g is not None:
                    jac[i][j][:, k] = g._data.astype(np.float64).ravel()
    return jac


def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, fast_mode=False):
    """True when ``func``'s autograd Jacobian matches central differences w.r.t. ``inputs``."""
    from ..tensor import Tensor
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wrt = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    numerical = _numerical(func, inputs, wrt, eps)
    analytical = _analytical(func, inputs, wrt)
    for i, (num_row, ana_row) in enumerate(zip(numerical, analytical)):
        for j, (n, a) in enumerate(zip(num_row, ana_row)):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {j} with respect to input {i},\n"
                    f"numerical:{n}\nanalytical:{a}\n")
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, **kwargs):
    """``gradcheck`` of the first derivatives: checks second-order gradients."""
    from ..tensor import Tensor
    from ..random import Generator
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    outs = [o for o in _outputs(func, inputs) if o.requires_grad]
    if grad_outputs is None:
        g = Generator().manual_seed(0)._rng
        grad_outputs = tuple(Tensor._make(g.standard_normal(o.shape).astype(o.dtype.np),
                                          requires_grad=True) for o in outs)
    else:
        grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Tensor) else tuple(grad_outputs)
    n = len(inputs)

    def first_order(*args):
        ins, gos = args[:n], args[n:]
        wrt = [x for x in ins if isinstance(x, Tensor) and x.requires_grad]
        outs_ = [o for o in _outputs(func, ins) if o.requires_grad]  # as torch: not indices
        grads = _grad(outs_, wrt, gos, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_order, inputs + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
