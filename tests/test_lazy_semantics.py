"""Lazy mode shows what eager mode shows when storage is written in place after a read.

A pending result is computed when something asks for it; what it computes must be what
it would have been when it was recorded. Copies (advanced indexing, a reshape no view
can make) are taken when their Program runs, before a later in-place write to their
input; views read their input's memory, as in PyTorch; a tensor from ``detach()`` shares
storage and version counter but is no view for autograd."""
import numpy as np
import pytest

import jitgrad as jg


def _both_modes(program):
    results = {}
    for mode in ("eager", "lazy", "lazy"):  # lazy twice: the second run is a cached one
        jg.set_mode(mode)
        results.setdefault(mode, []).append(program())
    for got in results["lazy"]:
        for a, b in zip(got, results["eager"][0]):
            np.testing.assert_array_equal(a, b)
    return results["eager"][0]


@pytest.mark.parametrize("index", ["mask", "ints"])
def test_an_index_read_is_a_copy_taken_before_a_later_in_place_write(index):
    def program():
        x = jg.tensor(np.arange(6.0).reshape(2, 3)) * 1
        key = (jg.tensor(np.array([[True, False, True], [False, True, False]]))
               if index == "mask" else [1, 0])
        y = x[key]
        x.add_(10)
        return [y.numpy().copy(), x.numpy().copy()]
    y, x = _both_modes(program)
    assert y.min() < 10 and x.min() >= 10  # the copy kept the values it was taken from


def test_a_reshape_that_copies_is_not_changed_by_a_later_in_place_write():
    def program():
        v0 = jg.tensor(np.arange(36.0).reshape(9, 2, 2))[1::2].requires_grad_()
        v1 = v0.reshape((16, 1))  # no view has these strides: a copy
        v0.detach().mul_(2)
        (v1 * v1).sum().backward()
        return [v1.detach().numpy().copy(), v0.grad.numpy().copy()]
    v1, grad = _both_modes(program)
    np.testing.assert_array_equal(v1.ravel()[:4], [4.0, 5.0, 6.0, 7.0])


def test_an_in_place_write_through_detach_keeps_the_source_history():
    def program():
        x = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = x * 2
        b.detach().mul_(3)  # shares b's storage and version counter; b's grad_fn stays
        assert type(b.grad_fn).__name__ == "MulBackward0" and b._version == 1
        (b * x).sum().backward()
        return [b.detach().numpy().copy(), x.grad.numpy().copy()]
    b, grad = _both_modes(program)
    np.testing.assert_array_equal(grad, [8.0, 16.0, 24.0])  # d(2x * 3 * x)/dx through b=2x


def test_a_view_of_a_strided_input_and_of_a_contiguous_one_take_their_own_paths():
    """Whether ``reshape`` is a view or a copy follows from its input's strides: a trie
    child recorded for a transposed input must not be taken for a contiguous one (or the
    reverse), or a write through the result would reach, or miss, the input unseen."""
    def program():
        out = []
        for transposed in (True, False, True, False):
            a = np.arange(6.0).reshape(2, 3)
            x = jg.from_numpy(np.asfortranarray(a) if transposed else a.copy())
            y = x.reshape(6)
            y.mul_(2)  # a view: x changes and its version moves; a copy: neither
            out += [x.numpy().copy(), y.numpy().copy(), [x._version, y._version]]
        return out
    _both_modes(program)
