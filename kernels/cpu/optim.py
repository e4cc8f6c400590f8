"""Fused optimizer updates over flat parameter arenas.

An optimizer keeps one param group's parameters (of one dtype) end to end in
one flat array, their gradients in a second and each kind of state in
another, so one call updates every parameter of the group. ``offsets[s]:
offsets[s + 1]`` is parameter ``s``'s slice; parameters whose ``active[s]``
is 0 (no gradient this step) are left alone, state included, as PyTorch
skips them. The arithmetic follows PyTorch's single-tensor CPU code
operation by operation in the arena's dtype: hyperparameters arrive as
Python floats, derived scalars are formed in float64 as PyTorch forms them
in Python, and each is rounded once to the arena's dtype. Where PyTorch's
kernels fuse a multiply-add (``add(alpha=)``, ``lerp``, ``addcmul``) the
expression is written so that LLVM's ``contract`` fuses it too. Where
PyTorch rounds a product on its own (``mul_`` before ``add_``), the product
is formed in float64 and rounded to the arena's dtype, with a factor that
arrives as a float64 argument already rounded to that dtype: the product of
two float32 values is exact in float64, so this is float32 multiplication,
and LLVM, not knowing the argument fits a float32, cannot shrink it back
into a float32 multiply that ``contract`` would fuse with the next add.
PyTorch's vectorised float32 ``sqrt`` is not correctly rounded (it differs
from IEEE sqrt by one ulp in ~17% of elements on AVX-512), so Adam agrees
with it to a few ulps, not bit for bit; SGD agrees exactly. Each segment's
loop runs over slices indexed from 0, with its choices made by selects on
loop-invariant flags, so LLVM vectorises it.
"""
import numpy as np

from .config import kernel


@kernel
def _direction(p, g, sign, wd, decay):
    """The gradient as PyTorch's update sees it: negated for ``maximize`` (``sign`` -1) and,
    with ``decay`` (L2 weight decay), ``grad.add(param, alpha=wd)``, fused."""
    g = g * sign
    return g + wd * p if decay else g


@kernel
def sgd_step(param, grad, buf, offsets, active, has_buf, lr, momentum, dampening,
             weight_decay, nesterov, maximize):
    """SGD with momentum, dampening, nesterov and L2 weight decay (``torch.optim.SGD``).

    ``buf`` is the momentum buffer; ``has_buf[s]`` says whether parameter
    ``s``'s buffer exists yet (its first step copies the gradient in).
    ``momentum`` must be rounded to the arena's dtype (PyTorch uses only
    that rounded value).
    """
    f = param.dtype.type
    neg_lr, mom, keep, wd = f(-lr), f(momentum), f(1.0 - dampening), f(weight_decay)
    sign, decay = f(-1.0) if maximize else f(1.0), weight_decay != 0.0
    for s in range(offsets.shape[0] - 1):
        if active[s] == 0:
            continue
        # slices indexed from 0 let Numba drop its negative-index wraparound: loops vectorise
        p, d = param[offsets[s]:offsets[s + 1]], grad[offsets[s]:offsets[s + 1]]
        if momentum == 0.0:
            for i in range(p.shape[0]):
                p[i] = p[i] + neg_lr * _direction(p[i], d[i], sign, wd, decay)
            continue
        bf = buf[offsets[s]:offsets[s + 1]]
        first = has_buf[s] == 0
        has_buf[s] = 1
        for i in range(p.shape[0]):
            g = _direction(p[i], d[i], sign, wd, decay)
            # buf.mul_(momentum) rounds, then .add_(g, alpha=1 - dampening) fuses
            b = g if first else f(np.float64(bf[i]) * momentum) + keep * g
            bf[i] = b
            p[i] = p[i] + neg_lr * (g + mom * b if nesterov else b)


@kernel
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, offsets, active, steps,
              lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled, maximize,
              beta2_rounded, decay_rounded):
    """Adam (``decoupled=False``) or AdamW (``decoupled=True``), optionally AMSGrad.

    ``steps`` holds each parameter's step count (float32, like PyTorch's
    ``state['step']``); it is incremented here for active parameters.
    ``max_exp_avg_sq`` is only touched when ``amsgrad``. ``beta2_rounded``
    and ``decay_rounded`` are ``beta2`` and ``1 - lr * weight_decay`` rounded
    to the arena's dtype.
    """
    f = param.dtype.type
    w1 = 1.0 - beta1  # exp_avg.lerp_(grad, 1 - beta1), PyTorch's two-sided lerp
    small = abs(w1) < 0.5
    lerp_w = f(w1) if small else f(w1) - f(1.0)
    w2, eps_, wd = f(1.0 - beta2), f(eps), f(weight_decay)
    sign = f(-1.0) if maximize else f(1.0)
    l2, shrink = weight_decay != 0.0 and not decoupled, weight_decay != 0.0 and decoupled
    for s in range(offsets.shape[0] - 1):
        if active[s] == 0:
            continue
        steps[s] += np.float32(1.0)
        step = np.float64(steps[s])
        neg_step = f(-(lr / (1.0 - beta1 ** step)))
        bc2_sqrt = f((1.0 - beta2 ** step) ** 0.5)
        a, b = offsets[s], offsets[s + 1]
        pa, gr, ea, es = param[a:b], grad[a:b], exp_avg[a:b], exp_avg_sq[a:b]
        mx = max_exp_avg_sq[a:b] if amsgrad else es
        for i in range(pa.shape[0]):
            p = pa[i]
            if shrink:
                p = f(np.float64(p) * decay_rounded)  # param.mul_(1 - lr * wd) rounds
            g = _direction(p, gr[i], sign, wd, l2)
            m = ea[i]
            m = m + lerp_w * (g - m) if small else g + lerp_w * (g - m)
            ea[i] = m
            # exp_avg_sq.mul_(beta2) rounds; .addcmul_(g, g, value=1 - beta2) fuses
            v = f(np.float64(es[i]) * beta2_rounded) + (w2 * g) * g
            es[i] = v
            if amsgrad:
                v = max(mx[i], v)
                mx[i] = v
            # addcdiv_: (value * exp_avg) / denom, then add
            pa[i] = p + neg_step * m / (np.sqrt(v) / bc2_sqrt + eps_)


@kernel
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, offsets, active, steps,
                 lr, alpha, eps, weight_decay, momentum, centered, maximize, alpha_rounded,
                 momentum_rounded, w_rounded):
    """RMSprop, optionally centered and with momentum (``torch.optim.RMSprop``).

    ``grad_avg`` is only touched when ``centered`` and ``momentum_buffer`` only
    when ``momentum > 0`` (PyTorch starts both at zero). ``steps`` counts each
    parameter's steps (PyTorch's ``state['step']``). ``alpha_rounded``,
    ``momentum_rounded`` and ``w_rounded`` are ``alpha``, ``momentum`` and
    ``1 - alpha`` rounded to the arena's dtype.
    """
    f = param.dtype.type
    w = 1.0 - alpha  # square_avg's addcmul value and grad_avg's lerp weight
    small = abs(w) < 0.5
    lerp_w = f(w) if small else f(w) - f(1.0)
    neg_lr, eps_, wd = f(-lr), f(eps), f(weight_decay)
    sign, decay, heavy = f(-1.0) if maximize else f(1.0), weight_decay != 0.0, momentum > 0.0
    for s in range(offsets.shape[0] - 1):
        if active[s] == 0:
            continue
        steps[s] += np.float32(1.0)
        a, b = offsets[s], offsets[s + 1]
        pa, gr, sq = param[a:b], grad[a:b], square_avg[a:b]
        ga = grad_avg[a:b] if centered else sq
        bf = momentum_buffer[a:b] if heavy else sq
        for i in range(pa.shape[0]):
            p = pa[i]
            g = _direction(p, gr[i], sign, wd, decay)
            # square_avg.mul_(alpha) rounds; .addcmul_(g, g, value=1 - alpha) fuses the
            # second product: (1 - alpha) * g is rounded on its own, so that ``reassoc``
            # cannot regroup it as (1 - alpha) * (g * g)
            v = f(np.float64(sq[i]) * alpha_rounded) + f(np.float64(g) * w_rounded) * g
            sq[i] = v
            if centered:
                m = ga[i]
                m = m + lerp_w * (g - m) if small else g + lerp_w * (g - m)
                ga[i] = m
                v = v - m * m  # square_avg.addcmul(grad_avg, grad_avg, value=-1)
            avg = np.sqrt(v) + eps_
            if heavy:
                # buf.mul_(momentum) rounds; .addcdiv_(g, avg); param.add_(buf, alpha=-lr)
                u = f(np.float64(bf[i]) * momentum_rounded) + g / avg
                bf[i] = u
                pa[i] = p + neg_lr * u
            else:
                pa[i] = p + neg_lr * g / avg  # addcdiv_: (value * g) / avg, then add


@kernel
def adagrad_step(param, grad, state_sum, offsets, active, steps, lr, lr_decay, eps,
                 weight_decay, maximize):
    """Adagrad with learning-rate decay and L2 weight decay (``torch.optim.Adagrad``).

    ``state_sum`` starts at ``initial_accumulator_value`` (filled by the
    optimizer); ``steps`` counts each parameter's steps, and step ``t`` uses
    the rate ``lr / (1 + (t - 1) * lr_decay)``.
    """
    f = param.dtype.type
    eps_, wd = f(eps), f(weight_decay)
    sign, decay = f(-1.0) if maximize else f(1.0), weight_decay != 0.0
    for s in range(offsets.shape[0] - 1):
        if active[s] == 0:
            continue
        steps[s] += np.float32(1.0)
        neg_clr = f(-(lr / (1.0 + (np.float64(steps[s]) - 1.0) * lr_decay)))
        a, b = offsets[s], offsets[s + 1]
        pa, gr, sm = param[a:b], grad[a:b], state_sum[a:b]
        for i in range(pa.shape[0]):
            p = pa[i]
            g = _direction(p, gr[i], sign, wd, decay)
            v = sm[i] + g * g  # state_sum.addcmul_(g, g, value=1), fused
            sm[i] = v
            pa[i] = p + neg_clr * g / (np.sqrt(v) + eps_)
