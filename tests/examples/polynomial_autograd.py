"""Fit y = sin(x) with a third-order polynomial: tensors and autograd, manual updates.

After PyTorch's tutorial "Learning PyTorch with Examples", section "PyTorch:
Tensors and autograd". The data and starting weights come from numpy, so PyTorch
and jitgrad (``python -m jitgrad.as_torch polynomial_autograd.py``) start from
the same numbers.
"""
import math

import numpy as np
import torch

dtype = torch.float
device = torch.device("cpu")


def main(steps=300, verbose=True):
    # Input and output data, drawn with numpy so both libraries see the same numbers.
    x = torch.tensor(np.linspace(-math.pi, math.pi, 2000), device=device, dtype=dtype)
    y = torch.sin(x)

    # Random starting weights for a + b x + c x^2 + d x^3.
    rng = np.random.default_rng(0)
    a, b, c, d = (torch.tensor(rng.standard_normal(), device=device, dtype=dtype,
                               requires_grad=True) for _ in range(4))

    learning_rate = 1e-6
    losses = []
    for t in range(steps):
        # Forward pass: predict y with operations on tensors.
        y_pred = a + b * x + c * x ** 2 + d * x ** 3

        # The loss is a tensor of shape (); loss.item() is its value.
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        if verbose and t % 50 == 49:
            print(t, loss.item())

        # Backward pass: gradients of the loss for a, b, c and d.
        loss.backward()

        # Update the weights by hand, with autograd off.
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad

            # Zero the gradients after updating the weights.
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None

    if verbose:
        print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
    return losses


if __name__ == "__main__":
    main()
