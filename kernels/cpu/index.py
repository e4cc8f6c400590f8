"""Gather and scatter over flat element indices.

The caller turns any indexing expression (slices, integers, integer and
boolean arrays) into an int64 array of flat positions, so one pair of
kernels serves every form of indexing and its gradient.
"""
import numpy as np

from .config import kernel


@kernel
def gather(x, idx, out):
    """out[i] = x[idx[i]] over flat 1-D arrays."""
    for i in range(idx.shape[0]):
        out[i] = x[idx[i]]


@kernel
def scatter_add(src, idx, out):
    """out[idx[i]] += src[i]; repeated indices accumulate."""
    for i in range(idx.shape[0]):
        out[idx[i]] += src[i]


@kernel
def scatter(src, idx, out):
    """out[idx[i]] = src[i]; the last write wins on repeated indices."""
    for i in range(idx.shape[0]):
        out[idx[i]] = src[i]


@kernel
def class_positions(target, classes):
    """Flat positions ``i * classes + target[i]`` of each row's class in a row-major
    ``(len(target), classes)`` array; an empty array if a target is not a class."""
    out = np.empty(target.shape[0], np.int64)
    for i in range(target.shape[0]):
        t = target[i]
        if t < 0 or t >= classes:
            return out[:0]
        out[i] = i * classes + t
    return out
