"""A character-level language model: embeddings, a tiny MLP, and greedy sampling.

In the style of PyTorch's tutorials and of Bengio et al.'s MLP language model:
the previous ``CONTEXT`` characters are embedded (``nn.Embedding``), joined and
passed through a hidden layer; the model predicts the next character with
``F.cross_entropy``, trained by AdamW over a ``TensorDataset`` served by a
``DataLoader(shuffle=True)`` for a few epochs; then it writes a few characters.
Starting weights come from numpy so PyTorch and jitgrad start from the same numbers.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness, it was "
    "the spring of hope, it was the winter of despair, we had everything before us, "
    "we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way - in short, the period was so far like the present period, "
    "that some of its noisiest authorities insisted on its being received, for good "
    "or for evil, in the superlative degree of comparison only."
)
CONTEXT = 3


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context=CONTEXT, n_embd=10, n_hidden=64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, n_embd)
        self.hidden = nn.Linear(context * n_embd, n_hidden)
        self.out = nn.Linear(n_hidden, vocab_size)

    def forward(self, idx):
        emb = self.embedding(idx)                        # (B, context, n_embd)
        h = torch.tanh(self.hidden(emb.view(emb.shape[0], -1)))
        return self.out(h)                               # (B, vocab_size) logits


def init_from_numpy(model, rng):
    """PyTorch's default initialisation, drawn from numpy: N(0, 1) embeddings,
    U(-1/sqrt(in_features), 1/sqrt(in_features)) linear weights and biases."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.weight.copy_(torch.tensor(rng.standard_normal(tuple(module.weight.shape))))
            elif isinstance(module, nn.Linear):
                bound = 1 / np.sqrt(module.in_features)
                for param in (module.weight, module.bias):
                    param.copy_(torch.tensor(rng.uniform(-bound, bound, tuple(param.shape))))


def build_dataset():
    chars = sorted(set(TEXT))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[ch] for ch in TEXT], dtype=np.int64)
    # Every window of CONTEXT characters, and the character that follows it.
    X = np.stack([ids[i:i + CONTEXT] for i in range(len(ids) - CONTEXT)])
    Y = ids[CONTEXT:]
    return chars, torch.tensor(X), torch.tensor(Y)


def train(epochs=3, shuffle=True, batch_size=32, verbose=True):
    torch.manual_seed(0)                # the DataLoader's shuffling
    chars, X, Y = build_dataset()
    loader = DataLoader(TensorDataset(X, Y), batch_size=batch_size, shuffle=shuffle)

    model = CharMLP(len(chars))
    init_from_numpy(model, np.random.default_rng(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    losses = []
    for epoch in range(epochs):
        for xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        if verbose:
            n = len(loader)
            print(f"epoch {epoch}: mean loss {sum(losses[-n:]) / n:.4f}")
    return model, chars, losses


@torch.no_grad()
def generate(model, chars, start="it ", length=40):
    # Greedy decoding: the most likely next character each time. The tutorials
    # sample with torch.multinomial(probs, 1); jitgrad has no multinomial yet
    # (tests/examples/GAPS.md), and argmax keeps both libraries' output identical.
    stoi = {ch: i for i, ch in enumerate(chars)}
    context = [stoi[ch] for ch in start[-CONTEXT:]]
    out = start
    model.eval()
    for _ in range(length):
        logits = model(torch.tensor([context]))
        probs = F.softmax(logits, dim=-1)
        ix = torch.argmax(probs, dim=-1).item()
        out += chars[ix]
        context = context[1:] + [ix]
    return out


def main(epochs=3, shuffle=True, verbose=True):
    model, chars, losses = train(epochs, shuffle, verbose=verbose)
    text = generate(model, chars)
    if verbose:
        print(repr(text))
    return losses


if __name__ == "__main__":
    main()
