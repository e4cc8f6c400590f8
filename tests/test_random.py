"""Random creation and sampling: shapes, keywords and errors as PyTorch's; distributions
checked by counting (the streams are numpy's PCG64, not PyTorch's)."""
import numpy as np
import pytest

import jitgrad as jg


def test_zero_dim_and_keyword_sizes():
    assert jg.randn(()).shape == () and jg.rand(()).shape == ()
    assert jg.randn(size=(2, 3)).shape == (2, 3) and jg.rand(size=[4]).shape == (4,)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sise'"):
        jg.randn(sise=(2,))
    g = jg.manual_seed(3)
    assert isinstance(g, jg.Generator)
    a = jg.randn(3)
    jg.manual_seed(3)
    np.testing.assert_array_equal(jg.randn(3).numpy(), a.numpy())


def test_multinomial_with_replacement_follows_the_weights():
    jg.manual_seed(0)
    draws = jg.multinomial(jg.tensor([1.0, 6.0, 3.0]), 30000, replacement=True)
    assert draws.dtype is jg.int64 and draws.shape == (30000,)
    np.testing.assert_allclose(np.bincount(draws.numpy(), minlength=3) / 30000,
                               [0.1, 0.6, 0.3], atol=0.015)
    rows = jg.multinomial(jg.tensor([[0.0, 1.0], [1.0, 0.0]]), 5, replacement=True)
    np.testing.assert_array_equal(rows.numpy(), [[1] * 5, [0] * 5])


def test_multinomial_without_replacement_draws_distinct_indices():
    jg.manual_seed(1)
    first = np.zeros(3)
    for _ in range(3000):
        d = jg.multinomial(jg.tensor([0.1, 0.6, 0.3]), 3).numpy()
        assert sorted(d) == [0, 1, 2]
        first[d[0]] += 1
    np.testing.assert_allclose(first / 3000, [0.1, 0.6, 0.3], atol=0.03)
    # zero weights are drawn only once the others are used up, as PyTorch does
    np.testing.assert_array_equal(jg.multinomial(jg.tensor([0.2, 0.0]), 2).numpy(), [0, 1])


@pytest.mark.parametrize("args, message", [
    (([0.2, -0.1], 1), "probability tensor contains either `inf`, `nan` or element < 0"),
    (([0.0, 0.0], 1), "invalid multinomial distribution (sum of probabilities <= 0)"),
    (([0.2, 0.8], 3), "cannot sample n_sample > prob_dist.size(-1) samples without "
                      "replacement"),
    (([0.2, 0.8], 0), "cannot sample n_sample <= 0 samples"),
    (([[[0.2, 0.8]]], 1), "prob_dist must be 1 or 2 dim"),
    (([0.2, float("inf")], 1), "probability tensor contains either `inf`, `nan` or "
                               "element < 0"),
])
def test_multinomial_errors_are_pytorchs(args, message):
    data, n = args
    with pytest.raises(RuntimeError) as error:
        jg.multinomial(jg.tensor(data), n)
    assert str(error.value) == message
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        torch.multinomial(torch.tensor(data), n)
    assert str(theirs.value) == message
