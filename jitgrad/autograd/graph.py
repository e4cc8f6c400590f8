"""Backward-graph nodes: the ``grad_fn`` objects users see.

A node is made when a differentiable op runs with grad mode on and some input
requires grad. Its class is named as PyTorch names it (``MulBackward0``), and
``next_functions`` points at the inputs' nodes, ending in ``AccumulateGrad``
for leaves. Saved tensors remember the version they were saved at, so a later
in-place change is caught when the backward pass reads them.
"""
import itertools
import weakref

import numpy as np

_counter = itertools.count()
_classes = {}


def node_class(name):
    """The ``Node`` subclass called ``name`` (made once, then reused)."""
    cls = _classes.get(name)
    if cls is None:
        cls = _classes[name] = type(name, (Node,), {"__slots__": ()})
    return cls


def _describe(shape, dtype):
    kind = {"float32": "Float", "float64": "Double", "int64": "Long",
            "int32": "Int", "bool": "Bool"}[dtype.name]
    return f"[jitgrad.{kind}Tensor [{', '.join(map(str, shape))}]]"


class SavedTensor:
    """A tensor kept for backward, with the version it had when saved.

    A saved *output* keeps only its data (or, while it is still pending, the
    pending computation): unpacking re-wraps it with the node as its
    ``grad_fn``, so the node does not keep its own output tensor alive.
    """

    __slots__ = ("tensor", "data", "counter", "version", "node", "output_nr")

    def __init__(self, tensor, node=None, output_nr=0):
        self.counter = tensor._vc
        self.version = tensor._vc[0]
        self.output_nr = output_nr
        if node is None:
            self.tensor, self.node, self.data = tensor, None, None
        else:
            self.tensor, self.node = None, weakref.ref(node)
            self.data = tensor._value if tensor._value is not None else tensor._lazy

    @classmethod
    def output(cls, counter, data, node):
        """A saved output known by its version counter and data (or pending computation)."""
        saved = object.__new__(cls)
        saved.counter, saved.version, saved.output_nr = counter, counter[0], 0
        saved.tensor, saved.node, saved.data = None, weakref.ref(node), data
        return saved

    def check(self, owner):
        """Raise PyTorch's error if the tensor changed in place since it was saved."""
        if self.counter[0] != self.version:
            t = self.tensor
            if t is None:
                made_by = f", which is output {self.output_nr} of {_op_name(owner)},"
                shape, dtype = _meta_of(self.data)
            else:
                # a view whose storage changed since: PyTorch regenerates its grad_fn
                # (AsStridedBackward0) before naming it
                name = "AsStrided" if t._view_fn is not None and (
                    t._base._requires_grad or t._requires_grad) else (
                    None if t.grad_fn is None else _op_name(t.grad_fn))
                made_by = "" if name is None else \
                    f", which is output {t._output_nr} of {name},"
                shape, dtype = t._shape, t._npdtype
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: {_describe(shape, dtype)}{made_by} is at version "
                f"{self.counter[0]}; expected version {self.version} instead. Hint: enable "
                "anomaly detection to find the operation that failed to compute its gradient, "
                "with jitgrad.autograd.set_detect_anomaly(True, check_nan=False).")

    def unpack(self, owner):
        if self.counter[0] != self.version:
            self.check(owner)
        if self.tensor is not None:
            return self.tensor
        from ..tensor import Tensor
        data = self.data
        if type(data) is not np.ndarray:  # still pending: a twin over the same computation
            if data.value is not None:
                data = self.data = data.value
            else:
                t = Tensor._make(None, True, self.counter)
                t._lazy = data
                t.grad_fn, t._output_nr = self.node(), self.output_nr
                return t
        t = Tensor._make(data, True, self.counter)
        t.grad_fn, t._output_nr = self.node(), self.output_nr
        return t


def _op_name(node):
    """PyTorch names the forward op in this message: ``Exp`` for ``ExpBackward0``, ``Pow2``
    for ``PowBackward2``, ``MyFn`` for a custom ``MyFnBackward``, and the C++ name of
    ``CopySlices``."""
    name = node.name()
    if name == "CopySlices":
        return "jitgrad::autograd::CopySlices"
    cut = name.rfind("Backward")
    if cut <= 0:
        return name
    n = name[cut + 8:]
    return name[:cut] + ("" if n == "0" else n)


def _meta_of(data):
    return data.shape, data.dtype


_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
          "backward through the graph a second time or if you need to access saved tensors after "
          "calling backward.")


class Node:
    """One recorded op in the backward graph (a ``grad_fn``)."""

    __slots__ = ("next_functions", "op", "attrs", "_saved", "_seq", "_inputs_meta",
                 "_n_outputs", "_pre_hooks", "_hooks", "_watchers", "__weakref__", "metadata")

    def __init__(self, op, attrs, inputs, n_outputs=1):
        self.op = op
        self.attrs = attrs
        edges, meta = [], []
        for t in inputs:
            fn = t.grad_fn
            edges.append((fn, t._output_nr) if fn is not None else
                         ((t._grad_accumulator(), 0) if t._requires_grad else (None, 0)))
            v = t._value
            # shape and numpy dtype of each input, for unbroadcasting and casting grads back
            meta.append((v.shape, v.dtype) if v is not None else (t._lazy.shape, t._lazy.dtype))
        self.next_functions = tuple(edges)
        self._inputs_meta = tuple(meta)
        self._n_outputs = n_outputs
        self._saved = {}
        self._seq = next(_counter)
        self._pre_hooks = None
        self._hooks = None
        self._watchers = None  # output_nr -> weakref of a tensor with hooks or retain_grad
        self.metadata = {}

    def watch(self, output_nr, tensor):
        """Let the engine find ``tensor`` (its hooks, ``retain_grad``) at this output."""
        if self._watchers is None:
            self._watchers = {}
        self._watchers[output_nr] = weakref.ref(tensor)

    def name(self):
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"

    def save(self, key, tensor, output_nr=None):
        """Keep ``tensor`` for backward; pass ``output_nr`` when it is this node's output."""
        self._saved[key] = SavedTensor(tensor, None if output_nr is None else self, output_nr or 0)

    def saved(self, key):
        if self._saved is None:
            raise RuntimeError(_FREED)
        return self._saved[key].unpack(self)

    def release(self):
        """Free saved tensors (after a backward pass without ``retain_graph``)."""
        if self._saved:
            self._saved = None

    @property
    def needs_input_grad(self):
        return tuple(fn is not None for fn, _ in self.next_functions)

    def register_hook(self, fn):
        """``fn(grad_inputs, grad_outputs)`` runs after this node computes its input grads."""
        self._hooks = (self._hooks or []) + [fn]
        return _Handle(self, "_hooks", fn)

    def register_prehook(self, fn):
        """``fn(grad_outputs)`` runs before this node; it may return replacement grads."""
        self._pre_hooks = (self._pre_hooks or []) + [fn]
        return _Handle(self, "_pre_hooks", fn)

    def __call__(self, *grads):
        return self.apply(list(grads))

    def apply(self, grads):
        """Input grads from output grads (missing outputs' grads are ``None``)."""
        return self.op.backward(self, grads)


class AccumulateGrad(Node):
    """The sink that adds a leaf's gradient into its ``.grad``."""

    __slots__ = ("variable",)

    def __init__(self, leaf):
        self.variable = leaf
        self.next_functions = ()
        self._inputs_meta = ((leaf._shape, leaf._npdtype),)
        self._n_outputs = 1
        self._saved = {}
        self._seq = -1  # runs after every op node
        self._pre_hooks = None
        self._hooks = None
        self._watchers = None
        self.metadata = {}


def _edge(t):
    """The (node, output number) a gradient for ``t`` flows into, or (None, 0)."""
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    if t.requires_grad:
        return (t._grad_accumulator(), 0)
    return (None, 0)


class _Handle:
    """Returned by ``register_hook``; ``remove()`` takes the hook off again."""

    def __init__(self, owner, attr, fn):
        self._owner, self._attr, self._fn = weakref.ref(owner), attr, fn

    def remove(self):
        owner = self._owner()
        if owner is not None:
            hooks = [h for h in getattr(owner, self._attr) or [] if h is not self._fn]
            setattr(owner, self._attr, hooks)
