"""Fit a random degree-4 polynomial with one linear layer and ``F.smooth_l1_loss``.

After the PyTorch examples repository's ``regression/main.py``: features
x, x^2, x^3, x^4 of random inputs, a target polynomial with random
coefficients, ``nn.Linear(4, 1)`` updated by hand through ``param.data.add_``
until the loss falls under 1e-3 (or ``steps`` batches). The target, the batches
and the starting weights come from numpy (``np.random.default_rng(0)``), so
PyTorch and jitgrad see the same numbers.
"""
from itertools import count

import numpy as np
import torch
import torch.nn.functional as F

POLY_DEGREE = 4


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE+1)], 1)


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = 'y = '
    for i, w in enumerate(W):
        result += '{:+.2f} x^{} '.format(w, i + 1)
    result += '{:+.2f}'.format(b[0])
    return result


def main(steps=200, verbose=True):
    rng = np.random.default_rng(0)
    W_target = torch.tensor(rng.standard_normal((POLY_DEGREE, 1)) * 5, dtype=torch.float32)
    b_target = torch.tensor(rng.standard_normal(1) * 5, dtype=torch.float32)

    def f(x):
        """Approximated function."""
        return x.mm(W_target) + b_target.item()

    def get_batch(batch_size=32):
        """Builds a batch i.e. (x, f(x)) pair."""
        random = torch.tensor(rng.standard_normal(batch_size), dtype=torch.float32)
        x = make_features(random)
        y = f(x)
        return x, y

    # Define model
    fc = torch.nn.Linear(W_target.size(0), 1)
    with torch.no_grad():
        bound = 1 / np.sqrt(fc.in_features)
        fc.weight.copy_(torch.tensor(rng.uniform(-bound, bound, (1, POLY_DEGREE))))
        fc.bias.copy_(torch.tensor(rng.uniform(-bound, bound, (1,))))

    losses = []
    for batch_idx in count(1):
        # Get data
        batch_x, batch_y = get_batch()

        # Reset gradients
        fc.zero_grad()

        # Forward pass
        output = F.smooth_l1_loss(fc(batch_x), batch_y)
        loss = output.item()
        losses.append(loss)

        # Backward pass
        output.backward()

        # Apply gradients
        for param in fc.parameters():
            param.data.add_(-0.1 * param.grad)

        # Stop criterion
        if loss < 1e-3 or batch_idx >= steps:
            break

    if verbose:
        print('Loss: {:.6f} after {} batches'.format(loss, batch_idx))
        print('==> Learned function:\t' + poly_desc(fc.weight.view(-1), fc.bias))
        print('==> Actual function:\t' + poly_desc(W_target.view(-1), b_target))
    return losses


if __name__ == "__main__":
    main()
