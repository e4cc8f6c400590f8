"""``jitgrad.backends.mps``: Apple's Metal backend, which jitgrad does not have."""


def is_available():
    """Whether the MPS device can be used: False."""
    return False


def is_built():
    """Whether jitgrad was built with MPS support: False."""
    return False
