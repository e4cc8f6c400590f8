"""A dynamic graph: a Module whose forward reuses one layer a random number of times.

After PyTorch's tutorial "Learning PyTorch with Examples", section "PyTorch:
Control Flow + Weight Sharing": each forward pass applies the middle layer 0 to
3 times (``random.randint``), so the graph changes from step to step; trained
with SGD and momentum. Data and starting weights come from numpy, and Python's
``random`` is seeded, so PyTorch and jitgrad run the same steps from the same numbers.
"""
import random

import numpy as np
import torch


class DynamicNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.input_linear = torch.nn.Linear(D_in, H)
        self.middle_linear = torch.nn.Linear(H, H)
        self.output_linear = torch.nn.Linear(H, D_out)

    def forward(self, x):
        # Pick 0, 1, 2 or 3 and reuse the middle layer that many times: the same
        # Module, hence the same weights, several times in one graph.
        h_relu = self.input_linear(x).clamp(min=0)
        for _ in range(random.randint(0, 3)):
            h_relu = self.middle_linear(h_relu).clamp(min=0)
        y_pred = self.output_linear(h_relu)
        return y_pred


def main(steps=60, verbose=True, seed=0):
    random.seed(seed)
    rng = np.random.default_rng(seed)

    # N is batch size; D_in input dimension; H hidden dimension; D_out output dimension.
    N, D_in, H, D_out = 64, 100, 32, 10
    x = torch.tensor(rng.standard_normal((N, D_in)), dtype=torch.float32)
    y = torch.tensor(rng.standard_normal((N, D_out)), dtype=torch.float32)

    model = DynamicNet(D_in, H, D_out)
    # PyTorch's default initialisation, U(-1/sqrt(in_features), 1/sqrt(in_features)),
    # drawn from numpy and loaded as a state dict.
    state = {}
    for name, layer in model.named_children():
        bound = 1 / np.sqrt(layer.in_features)
        shapes = {"weight": (layer.out_features, layer.in_features), "bias": (layer.out_features,)}
        for key, shape in shapes.items():
            state[f"{name}.{key}"] = torch.tensor(rng.uniform(-bound, bound, shape),
                                                  dtype=torch.float32)
    model.load_state_dict(state)

    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    losses = []
    for t in range(steps):
        y_pred = model(x)

        loss = criterion(y_pred, y)
        losses.append(loss.item())
        if verbose and t % 10 == 9:
            print(t, loss.item())

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


if __name__ == "__main__":
    main()
