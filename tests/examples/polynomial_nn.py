"""Fit y = sin(x) with a third-order polynomial built from ``torch.nn`` modules.

After PyTorch's tutorial "Learning PyTorch with Examples", section "PyTorch:
nn": ``nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))``,
``nn.MSELoss(reduction='sum')`` and manual updates under ``torch.no_grad()``.
Data and starting weights come from numpy (see ``polynomial_autograd.py``).
"""
import math

import numpy as np
import torch


def main(steps=300, verbose=True):
    x = torch.tensor(np.linspace(-math.pi, math.pi, 2000), dtype=torch.float32)
    y = torch.sin(x)

    # The output y is a linear function of (x, x^2, x^3): prepare that tensor.
    # x.unsqueeze(-1) has shape (2000, 1) and p shape (3,); broadcasting gives (2000, 3).
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1)
    )
    # The same starting weights in every library.
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.tensor(rng.uniform(-0.5, 0.5, tuple(param.shape))))

    loss_fn = torch.nn.MSELoss(reduction='sum')

    learning_rate = 1e-6
    losses = []
    for t in range(steps):
        y_pred = model(xx)

        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        if verbose and t % 50 == 49:
            print(t, loss.item())

        model.zero_grad()
        loss.backward()

        # Update the weights with gradient descent; each parameter is a tensor.
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad

    # model[0] is the first layer, like the first item of a list.
    linear_layer = model[0]
    if verbose:
        print(f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
              f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
    return losses


if __name__ == "__main__":
    main()
