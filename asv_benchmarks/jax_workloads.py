"""The DESIGN.md workloads in JAX: each whole step (forward, backward, update) under ``jax.jit``.

Same shapes, PyTorch's default initialisation ranges, and the same optimizers
written out (JAX has no built-in SGD/Adam); each ``step()`` ends by reading the
loss as a Python float, as the PyTorch and jitgrad steps do with ``.item()``.
"""
import jax
import jax.numpy as jnp


def _mlp_params(key, sizes):
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1 / a ** 0.5  # PyTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        params.append((jax.random.uniform(kw, (a, b), jnp.float32, -bound, bound),
                       jax.random.uniform(kb, (b,), jnp.float32, -bound, bound)))
    return params


def _mlp(params, x, act):
    for w, b in params[:-1]:
        x = act(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def _cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _sgd(lr):
    def update(params, grads, state):
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), state
    return update, None


def _adam(params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = (zeros, zeros, jnp.zeros((), jnp.float32))

    def update(params, grads, state):
        m, v, t = state
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = jax.tree_util.tree_map(lambda p, m, v: p - step * m / (jnp.sqrt(v) + eps),
                                        params, m, v)
        return params, (m, v, t)
    return update, state


def _trainer(params, loss_fn, update, state, batch):
    @jax.jit
    def train(params, state, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        params, state = update(params, grads, state)
        return params, state, loss

    box = [params, state]

    def step():
        box[0], box[1], loss = train(box[0], box[1], *batch)
        return float(loss)
    return step


def make_w1():
    key = jax.random.PRNGKey(0)
    params = _mlp_params(key, (16, 32, 32, 1))
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    x, y = jax.random.normal(kx, (32, 16)), jax.random.normal(ky, (32, 1))
    update, state = _sgd(0.01)
    return _trainer(params, lambda p, x, y: jnp.mean((_mlp(p, x, jnp.tanh) - y) ** 2),
                    update, state, (x, y))


def _classifier(sizes, batch, optimizer):
    params = _mlp_params(jax.random.PRNGKey(0), sizes)
    kx, ky = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.normal(kx, (batch, sizes[0]))
    y = jax.random.randint(ky, (batch,), 0, sizes[-1])
    update, state = optimizer(params)
    return _trainer(params, lambda p, x, y: _cross_entropy(_mlp(p, x, jax.nn.relu), y),
                    update, state, (x, y))


def make_w2():
    return _classifier((64, 128, 128, 10), 64, lambda p: _sgd(0.01))


def make_w3():
    return _classifier((784, 512, 512, 10), 256, _adam)


def make_w4(n=1_000_000):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    x, a, b, c = (jax.random.normal(k, (n,)) for k in keys)
    grad = jax.jit(jax.value_and_grad(lambda a, b, c: jnp.sum(jnp.tanh(x * a + b) * c),
                                      argnums=(0, 1, 2)))

    def step():
        loss, grads = grad(a, b, c)
        return float(loss)
    return step


def make_w5(length=100):
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    x, w = jax.random.normal(kx, (8,)), jax.random.normal(kw, (8,))

    def chain(x):
        h = x
        for _ in range(length // 4):
            h = (jnp.tanh(h * w) + 0.5) * 0.9 - 0.1
        return jnp.sum(h)
    grad = jax.jit(jax.value_and_grad(chain))

    def step():
        loss, g = grad(x)
        return float(loss)
    return step


WORKLOADS = {"W1": make_w1, "W2": make_w2, "W3": make_w3, "W4": make_w4, "W5": make_w5}
