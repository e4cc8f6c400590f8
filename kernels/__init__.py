"""Numba kernels for jitgrad: pure functions over arrays and scalars.

Nothing here knows about tensors. ``cpu/`` holds ``@njit`` kernels; a future
``cuda/`` holds their ``numba.cuda`` twins under the same names.
"""
