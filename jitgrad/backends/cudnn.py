"""``jitgrad.backends.cudnn``: cuDNN's flags, which scripts set for reproducibility.

There is no cuDNN in jitgrad: the flags keep what a script assigns (as
PyTorch's do without CUDA) and change nothing; jitgrad's CPU kernels are
deterministic.
"""
enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    """Whether cuDNN can be used: False."""
    return False


def version():
    """cuDNN's version: None, as it is not there."""
    return None
