"""The seed document's examples print exactly what PyTorch prints."""
import contextlib
import io
import re
import warnings

import pytest

import jitgrad
from jitgrad.examples import seed

# PyTorch 2.13's output for each snippet (object addresses normalised)
EXPECTED = {
    "graph": """\
x
data: 1.0
requires_grad: True
grad: None
grad_fn: None
is_leaf: True

y
data: 2.0
requires_grad: False
grad: None
grad_fn: None
is_leaf: True

z
data: 2.0
requires_grad: True
grad: None
grad_fn: <MulBackward0 object at 0x...>
is_leaf: False

""",
    "no_grad": "True\nTrue\nFalse\n",
    "backward": "tensor(3.)\n",
    "vector_jacobian": "tensor([5., 1., 7.]) tensor([0., 2., 8.])\n",
    "implicit_grad_error": "RuntimeError: grad can be implicitly created only for scalar outputs\n",
}


def _output(name, module):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seed.run_snippet(name, module)
    return re.sub(r"0x[0-9a-fA-F]+", "0x...", buf.getvalue()), caught


@pytest.mark.parametrize("name", list(seed.SNIPPETS))
def test_seed_snippet_prints_pytorchs_output(name):
    out, _ = _output(name, jitgrad)
    assert out == EXPECTED[name]


@pytest.mark.parametrize("name", list(seed.SNIPPETS))
def test_seed_snippet_matches_live_torch(name):
    torch = pytest.importorskip("torch")
    ours, our_warnings = _output(name, jitgrad)
    theirs, their_warnings = _output(name, torch)
    assert ours == theirs.replace("torch.", "jitgrad.")
    assert [w.category for w in our_warnings] == [w.category for w in their_warnings]


def test_non_leaf_grad_read_warns_like_pytorch():
    _, caught = _output("graph", jitgrad)
    assert [w.category for w in caught] == [UserWarning]
    assert "not a leaf Tensor" in str(caught[0].message)


def test_regression_demo_fits_the_line():
    with contextlib.redirect_stdout(io.StringIO()):
        loss, w, b = seed.regression(jitgrad, steps=400, lr=0.2)
    assert loss < 0.005
    assert w == pytest.approx(3.0, abs=0.15)
    assert b == pytest.approx(-2.0, abs=0.1)
