"""Predict sine waves with two stacked LSTM cells, trained by L-BFGS.

After the PyTorch examples repository's ``time_sequence_prediction``: the data
are sine waves with random phase shifts, the model (``nn.LSTMCell`` twice, then
``nn.Linear``) reads each wave one value at a time and predicts the next one,
the loss is ``nn.MSELoss``, the optimizer ``optim.LBFGS(lr=0.8)`` with a closure,
everything in float64 (``model.double()``); after each step it also predicts a
few values past the end of the test waves. Sizes are smaller than the example's
(8 waves of 30 values, 16 hidden units, not 100 of 1000 and 51) so that it runs
in seconds. Data and starting weights come from numpy.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

HIDDEN = 16


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, HIDDEN)
        self.lstm2 = nn.LSTMCell(HIDDEN, HIDDEN)
        self.linear = nn.Linear(HIDDEN, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        c_t = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), HIDDEN, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):  # predict the future, feeding each prediction back in
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        outputs = torch.cat(outputs, dim=1)
        return outputs


def sine_waves(rng, N=8, L=30, T=5):
    # As the example's generate_sine_wave.py: x[i, t] = t + a random shift of wave i.
    x = np.arange(L) + rng.integers(-4 * T, 4 * T, N).reshape(N, 1)
    return np.sin(x / 1.0 / T).astype('float64')


def main(steps=3, verbose=True, future=10):
    rng = np.random.default_rng(0)
    data = sine_waves(rng)
    input = torch.from_numpy(data[2:, :-1])
    target = torch.from_numpy(data[2:, 1:])
    test_input = torch.from_numpy(data[:2, :-1])
    test_target = torch.from_numpy(data[:2, 1:])

    seq = Sequence()
    seq.double()
    # PyTorch's default initialisation, drawn from numpy: U(-1/sqrt(hidden), ...) for
    # the cells, U(-1/sqrt(in_features), ...) for the linear layer (both 1/sqrt(HIDDEN)).
    bound = 1 / np.sqrt(HIDDEN)
    with torch.no_grad():
        for param in seq.parameters():
            param.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(param.shape))))

    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8)
    losses = []
    for i in range(steps):
        if verbose:
            print('STEP: ', i)

        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            losses.append(loss.item())
            if verbose:
                print('loss:', loss.item())
            loss.backward()
            return loss
        optimizer.step(closure)
        # Predict past the end of the test waves; no gradients needed.
        with torch.no_grad():
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            if verbose:
                print('test loss:', loss.item())
    return losses


if __name__ == "__main__":
    main()
