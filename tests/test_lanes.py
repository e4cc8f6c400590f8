"""The recorder's fast lanes (``unary_lane``, ``binary_lane``) are hand-inlined copies of
``record``'s hot path: recording through a lane and through ``record`` itself must reach
the same trie nodes and build the same Pending outputs and tensors."""
import numpy as np
import pytest

import jitgrad as jg
from jitgrad import lazy, ops
from jitgrad.lazy import recorder

F32 = np.dtype(np.float32)
MUL_ATTRS_KEY = (("dtype", F32.str),)  # the attributes key binary_lane records float32 with


def _fields(t):
    """What recording made for ``t``: its Pending's fields (operands by where they come
    from) and the autograd state the tensor was given."""
    p = t._lazy
    operands = [("out", u._lazy.pos) if u._lazy is not None and u._lazy.seg is p.seg
                else ("in", id(u)) for u in p.inputs]
    return (p.op, operands, dict(p.attrs), p.shape, p.dtype, p.pos, p.index, p.view, p.grad,
            p.vc is not None, p.node, t._requires_grad, t._grad_fn is p, t._vc is p.vc or
            p.vc is None, t._value)


def _record_twice(step, x, w):
    """Trie nodes and fields of three chained ops recorded by ``step``: once to teach the
    trie the sequence, then again, measured, in a fresh segment (the hot path)."""
    for warm in (True, False):
        jg.realize(x, w)
        lazy.flush()
        h, nodes, fields = x, [], []
        for _ in range(3):
            h = step(h, w)
            nodes.append(lazy._tls.rec.node)
            fields.append(_fields(h))
        lazy.flush()
    return nodes, fields


@pytest.fixture
def calls_of_record(monkeypatch):
    """How often the general ``record`` ran (a lane that takes its inline path calls it
    never)."""
    calls = []
    general = recorder.record

    def counting(*args, **kwargs):
        calls.append(args[0])
        return general(*args, **kwargs)
    monkeypatch.setattr(recorder, "record", counting)
    return calls


@pytest.mark.parametrize("requires_grad", [True, False])
def test_unary_lane_records_as_record_does(lazy_mode, calls_of_record, requires_grad):
    x = jg.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=jg.float32,
                  requires_grad=requires_grad)
    w = jg.zeros(1)
    lane_nodes, lane_fields = _record_twice(lambda h, w: jg.tanh(h), x, w)
    # the first round's three, and the measured round's first op, which binds ``x`` (an
    # input is bound at first use, by record); the two ops after it ran inline
    assert len(calls_of_record) == 4
    general_nodes, general_fields = _record_twice(
        lambda h, w: lazy.record(jg.tanh.op, [h], {}, jg.tanh.grad_fn_name, ()), x, w)
    assert lane_nodes == general_nodes
    assert lane_fields == general_fields


@pytest.mark.parametrize("requires_grad", [True, False])
@pytest.mark.parametrize("other", ["tensor", "float"])
def test_binary_lane_records_as_record_does(lazy_mode, calls_of_record, requires_grad, other):
    x = jg.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=jg.float32,
                  requires_grad=requires_grad)
    w = jg.tensor(np.linspace(0, 1, 4), dtype=jg.float32)
    operand = (lambda w: w) if other == "tensor" else (lambda w: 0.75)
    lane_nodes, lane_fields = _record_twice(lambda h, w: h * operand(w), x, w)
    assert len(calls_of_record) == 4  # (as for the unary lane)
    constant = ops._wrap(0.75, jg.float32)  # the shared 0-d tensor the lane multiplies by

    def general(h, w):
        return lazy.record(ops._MUL, [h, w if other == "tensor" else constant],
                           {"dtype": F32}, "MulBackward0", MUL_ATTRS_KEY)
    general_nodes, general_fields = _record_twice(general, x, w)
    assert lane_nodes == general_nodes
    assert lane_fields == general_fields
