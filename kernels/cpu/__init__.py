"""CPU kernels, compiled by Numba and cached on disk."""
