"""Recording cost per op in lazy mode (microseconds), for checking that a change to the
recorder's hot path costs nothing: ``python tools/bench_recording.py``.

Each case records ``n`` ops into one segment (never realized while timed), best of
``rounds``; the ops repeat one structure, so after the first round every op takes
the trie's remembered child (the hot path a training loop runs).
"""
import time

import numpy as np

import jitgrad as jg


def _case(name, make, op, n=200, rounds=30):
    x, w = make()
    best = float("inf")
    for _ in range(rounds):
        jg.realize(x)  # a fresh segment
        start = time.perf_counter()
        h = x
        for _ in range(n):
            h = op(h, w)
        best = min(best, time.perf_counter() - start)
        jg.realize(h)
    return name, best / n * 1e6


def main():
    jg.set_mode("lazy")
    rng = np.random.default_rng(0)

    def small(grad):
        return lambda: (jg.tensor(rng.standard_normal((4, 8)), dtype=jg.float32,
                                  requires_grad=grad),
                        jg.tensor(rng.standard_normal((4, 8)), dtype=jg.float32))
    cases = [
        ("x.tanh()", small(True), lambda h, w: h.tanh()),
        ("x * w", small(True), lambda h, w: h * w),
        ("x * 0.9", small(True), lambda h, w: h * 0.9),
        ("x + x (no grad)", small(False), lambda h, w: h + h),
        ("x.sum(1, keepdim)", small(True), lambda h, w: h.sum(1, keepdim=True) * w),
        ("x.reshape", small(True), lambda h, w: h.reshape(8, 4).reshape(4, 8) * w),
        ("x[:, :4] cat", small(True), lambda h, w: jg.cat([h[:, 4:], h[:, :4]], 1) * w),
    ]
    for name, make, op in cases:
        label, us = _case(name, make, op)
        print(f"{label:22s} {us:6.2f} us/op")


if __name__ == "__main__":
    main()
