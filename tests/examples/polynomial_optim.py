"""Fit y = sin(x) with a third-order polynomial, trained by ``torch.optim.RMSprop``.

After PyTorch's tutorial "Learning PyTorch with Examples", section "PyTorch:
optim". Data and starting weights come from numpy (see ``polynomial_autograd.py``).
"""
import math

import numpy as np
import torch


def main(steps=300, verbose=True):
    x = torch.tensor(np.linspace(-math.pi, math.pi, 2000), dtype=torch.float32)
    y = torch.sin(x)

    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1)
    )
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.tensor(rng.uniform(-0.5, 0.5, tuple(param.shape))))
    loss_fn = torch.nn.MSELoss(reduction='sum')

    # The optimizer updates the model's weights for us.
    learning_rate = 1e-3
    optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
    losses = []
    for t in range(steps):
        y_pred = model(xx)

        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        if verbose and t % 50 == 49:
            print(t, loss.item())

        # Zero the gradients, compute new ones, and let the optimizer step.
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    linear_layer = model[0]
    if verbose:
        print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
              f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
    return losses


if __name__ == "__main__":
    main()
