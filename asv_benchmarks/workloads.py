"""The performance workloads of DESIGN.md, written once for any PyTorch-like library.

Each ``make_*`` takes the library module (``torch`` or ``jitgrad``) and returns a
``step()`` that runs one training step (or forward and backward) and ends by
reading the loss with ``.item()``, as a training loop would.
"""


def _same(fn):
    return fn


def _train_step(model, opt, loss_fn, x, y):
    """One optimizer step on a fixed batch, ending with the loss read as a Python float."""
    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def make_w1(lib, compile=_same):
    """MLP 16-32-32-1, batch 32, tanh, MSE loss, SGD."""
    nn = lib.nn
    lib.manual_seed(0)
    model = compile(nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                                  nn.Linear(32, 1)))
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    x, y = lib.randn(32, 16), lib.randn(32, 1)
    return _train_step(model, opt, loss_fn, x, y)


def _classifier_step(lib, sizes, batch, optimizer, compile):
    nn = lib.nn
    lib.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))
    opt = optimizer(model.parameters())
    model = compile(model)
    loss_fn = nn.CrossEntropyLoss()
    x = lib.randn(batch, sizes[0])
    y = lib.randint(0, sizes[-1], (batch,))
    return _train_step(model, opt, loss_fn, x, y)


def make_w2(lib, compile=_same):
    """MLP 64-128-128-10, batch 64, ReLU, cross-entropy, SGD."""
    return _classifier_step(lib, (64, 128, 128, 10), 64,
                            lambda p: lib.optim.SGD(p, lr=0.01), compile)


def make_w3(lib, compile=_same):
    """MLP 784-512-512-10, batch 256, ReLU, cross-entropy, Adam."""
    return _classifier_step(lib, (784, 512, 512, 10), 256,
                            lambda p: lib.optim.Adam(p, lr=1e-3), compile)


def make_w4(lib, n=1_000_000, compile=_same):
    """sum(tanh(x * a + b) * c) over 1e6 elements, forward and backward."""
    lib.manual_seed(0)
    x = lib.randn(n)
    a, b, c = (lib.randn(n, requires_grad=True) for _ in range(3))

    forward = compile(lambda x, a, b, c: ((x * a + b).tanh() * c).sum())

    def step():
        for p in (a, b, c):
            p.grad = None
        loss = forward(x, a, b, c)
        loss.backward()
        return loss.item()
    return step


def make_w5(lib, length=100, compile=_same):
    """A chain of 100 tiny ops on 8-element tensors, forward and backward."""
    lib.manual_seed(0)
    x = lib.randn(8, requires_grad=True)
    w = lib.randn(8)

    def chain(x, w):
        h = x
        for i in range(length // 4):
            h = ((h * w).tanh() + 0.5) * 0.9 - 0.1
        return h.sum()
    forward = compile(chain)

    def step():
        x.grad = None
        loss = forward(x, w)
        loss.backward()
        return loss.item()
    return step


WORKLOADS = {"W1": make_w1, "W2": make_w2, "W3": make_w3, "W4": make_w4, "W5": make_w5}
