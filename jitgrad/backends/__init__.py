"""``jitgrad.backends``: the flags and availability checks scripts read from ``torch.backends``.

jitgrad runs on the CPU only, so the accelerator backends report themselves
unavailable and their flags change nothing, as PyTorch's do on a machine
without them.
"""
from . import cudnn, mps

__all__ = ["cudnn", "mps"]
