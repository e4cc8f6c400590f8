"""The bottom layer: dtypes, shape arithmetic and the process's runtime state.

Nothing here imports another part of jitgrad but ``kernels``."""
