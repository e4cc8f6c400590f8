"""Train an MLP and a small CNN on scikit-learn's handwritten digits, with jitgrad.

    python -m jitgrad.examples.digits                  # both models, ~1 min on 2 cores
    python -m jitgrad.examples.digits --model mlp --steps 300
    python -m jitgrad.examples.digits --compare-torch  # the same run in PyTorch, side by side
    python -m jitgrad.examples.digits --mode lazy      # steps run as cached native Programs

The data are the 1797 8x8 images bundled with scikit-learn (no download),
split once into 1437 training and 360 held-out images (the split does not
depend on ``--seed``), each pixel standardised with the training set's mean
and spread. Each model trains with Adam and a cosine learning-rate schedule
on shuffled minibatches under a tqdm progress bar (loss, steps/s), is scored
on the held-out images,
and is saved with ``jitgrad.save`` and loaded back into a fresh model, which
must score the same. ``--compare-torch`` trains the same architecture in
PyTorch from the same initial weights on the same batches and prints the
time per step of each and their ratio.

Needs the ``examples`` extra: ``pip install -e ".[examples]"``.
"""
import argparse
import math
import sys
import time

import numpy as np

import jitgrad as jg
from jitgrad import nn

N_TEST = 360
SPLIT_SEED = 0
WARMUP = 10  # steps left out of the timing (the first loads compiled kernels)


def load_data():
    """(x_train, y_train, x_test, y_test): standardised float32 pixels, int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install 'jitgrad[examples]'")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    test, train = order[:N_TEST], order[N_TEST:]
    mean, spread = x[train].mean(0), x[train].std(0) + 0.01  # some pixels are always 0
    x = ((x - mean) / spread).astype(np.float32)
    return x[train], y[train], x[test], y[test]


def build(kind, lib=nn):
    """The model ``kind`` ('mlp' or 'cnn') from ``lib`` (jitgrad.nn or torch.nn)."""
    if kind == "mlp":
        return lib.Sequential(lib.Linear(64, 128), lib.ReLU(), lib.Linear(128, 64), lib.ReLU(),
                              lib.Linear(64, 10))
    return lib.Sequential(lib.Conv2d(1, 16, 3, padding=1), lib.ReLU(), lib.MaxPool2d(2),
                          lib.Flatten(), lib.Linear(16 * 4 * 4, 10))


def inputs(kind, x):
    return x if kind == "mlp" else x.reshape(-1, 1, 8, 8)


def batches(n, batch_size, steps, seed):
    """Index arrays for ``steps`` minibatches, reshuffling after each pass over the data."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < steps:
        order = rng.permutation(n)
        out.extend(order[i:i + batch_size] for i in range(0, n, batch_size))
    return out[:steps]


def progress(total, desc, enabled):
    """A tqdm bar, or a stand-in that ignores updates when tqdm is missing or disabled."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
        if enabled:
            print("(install tqdm for a progress bar: pip install 'jitgrad[examples]')")
    if tqdm is None or not enabled:
        class Quiet:
            def update(self, n=1):
                pass

            def set_postfix(self, **kw):
                pass

            def close(self):
                pass
        return Quiet()
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def train_jitgrad(model, x, y, plan, lr, desc, show):
    """Adam (cosine-annealed lr) on cross-entropy over the minibatches in ``plan``.

    Returns the seconds per step after the first ``WARMUP`` steps.
    """
    opt = jg.optim.Adam(model.parameters(), lr=lr)
    schedule = jg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(plan))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = progress(len(plan), desc, show)
    start = None
    for step, idx in enumerate(plan):
        if step == WARMUP:
            start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(jg.from_numpy(x[idx])), jg.from_numpy(y[idx]))
        loss.backward()
        opt.step()
        schedule.step()
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        bar.update()
    bar.close()
    return (time.perf_counter() - start) / max(1, len(plan) - WARMUP) if start else float("nan")


def accuracy(model, x, y):
    model.eval()
    with jg.no_grad():
        pred = model(jg.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def train_torch(kind, init_state, x, y, plan, lr, x_test, y_test):
    """The same run in PyTorch (same initial weights, same batches); (s/step, accuracy).

    PyTorch runs on one thread, its fastest setting for a model this small (jitgrad's
    kernels are single-threaded too); with more threads its OpenMP workers spin and,
    on a busy 2-core machine, each step can take several times longer.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_torch(torch, kind, init_state, x, y, plan, lr, x_test, y_test)
    finally:
        torch.set_num_threads(threads)


def _train_torch(torch, kind, init_state, x, y, plan, lr, x_test, y_test):
    model = build(kind, torch.nn)
    model.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in init_state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(plan))
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    start = None
    for step, idx in enumerate(plan):
        if step == WARMUP:
            start = time.perf_counter()
        ib = torch.from_numpy(idx)
        opt.zero_grad()
        loss = loss_fn(model(xt[ib]), yt[ib])
        loss.backward()
        opt.step()
        schedule.step()
    per_step = (time.perf_counter() - start) / max(1, len(plan) - WARMUP) if start \
        else float("nan")
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    return per_step, float((pred == y_test).mean())


def run(kind, epochs=30, steps=None, seed=0, out=None, batch_size=32, lr=2e-3,
        compare_torch=False, show_progress=True, data=None):
    """Train, score, save and reload one model; returns a dict of what it measured."""
    x_train, y_train, x_test, y_test = data or load_data()
    x_train, x_test = inputs(kind, x_train), inputs(kind, x_test)
    total = steps if steps else epochs * math.ceil(len(x_train) / batch_size)
    plan = batches(len(x_train), batch_size, total, seed)
    jg.manual_seed(seed)
    model = build(kind)
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    per_step = train_jitgrad(model, x_train, y_train, plan, lr, kind, show_progress)
    acc = accuracy(model, x_test, y_test)
    result = {"model": kind, "steps": total, "accuracy": acc, "s_per_step": per_step}
    print(f"{kind}: held-out accuracy {acc:.2%} ({round(acc * len(y_test))}/{len(y_test)}) "
          f"after {total} steps, {per_step * 1e3:.3f} ms/step")
    if out:
        path = out.format(model=kind)
        jg.save(model.state_dict(), path)
        fresh = build(kind)
        fresh.load_state_dict(jg.load(path))
        reloaded = accuracy(fresh, x_test, y_test)
        same = all(np.array_equal(a.numpy(), b.numpy()) for a, b in
                   zip(model.state_dict().values(), fresh.state_dict().values()))
        if not same or reloaded != acc:
            raise RuntimeError(f"checkpoint {path} did not round-trip")
        print(f"{kind}: checkpoint {path} written and reloaded (accuracy {reloaded:.2%}, "
              "identical weights)")
        result["checkpoint"] = path
    if compare_torch:
        try:
            import torch
        except ImportError:
            print(f"{kind}: --compare-torch skipped: PyTorch is not installed "
                  "(pip install torch)")
            return result
        t_step, t_acc = train_torch(kind, init_state, x_train, y_train, plan, lr, x_test,
                                    y_test)
        print(f"{kind} vs PyTorch {torch.__version__}: jitgrad {per_step * 1e3:.3f} ms/step, "
              f"PyTorch (1 thread) {t_step * 1e3:.3f} ms/step, ratio {per_step / t_step:.2f}x "
              f"(jitgrad/PyTorch); accuracy jitgrad {acc:.2%}, PyTorch {t_acc:.2%}")
        result.update(torch_s_per_step=t_step, torch_accuracy=t_acc)
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="jitgrad-train", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training set")
    p.add_argument("--steps", type=int, default=None,
                   help="train for this many minibatches instead (short mode)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="initial learning rate")
    p.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    p.add_argument("--out", default="digits-{model}.jgckpt",
                   help="checkpoint path ({model} becomes mlp or cnn); '' to skip saving")
    p.add_argument("--compare-torch", action="store_true",
                   help="also train in PyTorch and compare time per step and accuracy")
    p.add_argument("--mode", choices=["eager", "lazy"], default=None,
                   help="jitgrad's execution mode (default: $JITGRAD_MODE, else eager)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def main(argv=None):
    """Entry point of ``python -m jitgrad.examples.digits`` and ``jitgrad-train``."""
    args = parse_args(argv)
    if args.mode:
        jg.set_mode(args.mode)
    data = load_data()
    for kind in (["mlp", "cnn"] if args.model == "both" else [args.model]):
        run(kind, args.epochs, args.steps, args.seed, args.out or None, args.batch_size,
            args.lr, args.compare_torch, not args.no_progress, data)


if __name__ == "__main__":
    main()
