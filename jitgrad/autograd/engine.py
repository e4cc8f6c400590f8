"""The backward pass: run the graph's nodes in reverse creation order.

A node is created after every node that feeds it, so processing the nodes
reachable from the roots in decreasing sequence number is a topological order
(``AccumulateGrad`` sinks carry -1 and run last). Gradients for each node's
outputs are summed in a buffer until the node runs.
"""
import numpy as np

from .grad_mode import no_grad, set_grad_enabled
from .anomaly_mode import check_grads, is_anomaly_enabled
from .graph import AccumulateGrad
from ..core.constants import shared_ones as _ones
from .. import lazy as _lazy
from ..lazy import is_lazy, train_step
from ..lazy import step_cache as _step_cache
from ..tensor import Tensor


def _collect(roots):
    seen, stack = set(), [n for n in roots if n is not None]
    nodes = []
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        nodes.append(n)
        stack.extend(fn for fn, _ in n.next_functions if fn is not None and fn not in seen)
    nodes.sort(key=lambda n: n._seq, reverse=True)
    return nodes


def _add(a, b):
    return b if a is None else a + b


def _run_hooks(hooks, grad):
    for hook in hooks or ():
        result = hook(grad)
        if result is not None:
            grad = result
    return grad


def _make_grads(outputs, grad_outputs):
    grads = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if out._requires_grad and out.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            grads.append(Tensor._make(_ones(out._shape, out._npdtype)))
            continue
        elif not isinstance(g, Tensor):
            g = Tensor._make(np.array(g, dtype=out.dtype.np))
        if g.shape != out.shape:
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape} and "
                               f"output[{i}] has a shape of {out.shape}.")
        if g.dtype is not out.dtype:
            g = g.to(out.dtype)
        grads.append(g)
    return grads


def _as_tuple(x):
    if x is None:
        return ()
    return (x,) if isinstance(x, Tensor) else tuple(x)


def run(outputs, grad_outputs, retain_graph, create_graph, inputs=None, allow_unused=False,
        accumulate=True):
    """Propagate ``grad_outputs`` from ``outputs`` back through the graph.

    With ``accumulate`` the leaves' ``.grad`` fields are updated (``backward``);
    otherwise the gradients reaching ``inputs`` are returned (``grad``).
    """
    for i, out in enumerate(outputs):
        if out._grad_fn is None and not out._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
    grads = _make_grads(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    recorder = None
    if (accumulate and inputs is None and not create_graph and len(outputs) == 1 and is_lazy()
            and not is_anomaly_enabled()):
        recorder = train_step(outputs[0], grads[0], retain_graph)
        if recorder is True:
            return None

    # where each output's gradient enters the graph
    buffers = {}
    roots = []
    for out, g in zip(outputs, grads):
        node, nr = (out.grad_fn, out._output_nr) if out.grad_fn is not None else (
            out._grad_accumulator(), 0)
        buf = buffers.setdefault(node, [None] * node._n_outputs)
        buf[nr] = _add(buf[nr], g)
        roots.append(node)

    # tensors whose gradient is captured: non-leaves at (grad_fn, output_nr), leaves at their sink
    captures = {}
    targets = []
    for t in inputs or ():
        key = (t.grad_fn, t._output_nr) if t.grad_fn is not None else (t._grad_accumulator(), 0)
        captures[key] = None
        targets.append(key)

    nodes = _collect(roots)
    if inputs is not None and not accumulate:
        nodes = _prune(nodes, {k[0] for k in targets})

    leaf_grads = []  # (leaf, grad): in lazy mode all are realized by one Program at the end
    with set_grad_enabled(create_graph):
        for node in nodes:
            buf = buffers.pop(node, None)
            if buf is None:
                continue
            if node._pre_hooks:
                for hook in node._pre_hooks:
                    result = hook(tuple(buf))
                    if result is not None:
                        buf = list(result)
            for nr in range(len(buf)):
                t = node._watchers and node._watchers.get(nr)
                t = t and t()
                if t is not None and buf[nr] is not None:
                    buf[nr] = _run_hooks(t._hooks, buf[nr])
                    if t._retains_grad and accumulate:
                        t._grad = _accumulated(t._grad, buf[nr], create_graph)
                if (node, nr) in captures:
                    captures[(node, nr)] = _add(captures[(node, nr)], buf[nr])
            if isinstance(node, AccumulateGrad):
                if accumulate and (inputs is None or (node, 0) in captures):
                    leaf_grads.append((node.variable, buf[0]))
                continue
            try:
                in_grads = node.apply(buf)
            except Exception:
                if accumulate:  # PyTorch has already accumulated into the leaves it could
                    _accumulate_ready(nodes, node, buffers, captures, inputs, create_graph)
                raise
            check_grads(node, in_grads)
            if node._hooks:
                for hook in node._hooks:
                    result = hook(tuple(in_grads), tuple(buf))
                    if result is not None:
                        in_grads = list(result)
            for (fn, nr), g in zip(node.next_functions, in_grads):
                if fn is None or g is None:
                    continue
                nb = buffers.setdefault(fn, [None] * fn._n_outputs)
                nb[nr] = _add(nb[nr], g)
            if not retain_graph:
                node.release()

    if accumulate:
        if recorder is not None:
            recorder.register(leaf_grads)
        _realize_all([g for _, g in leaf_grads])
        with set_grad_enabled(create_graph):
            for leaf, g in leaf_grads:
                _accumulate_leaf(leaf, g, create_graph)
        return None
    result = []
    for i, (t, key) in enumerate(zip(inputs, targets)):
        g = captures[key]
        if g is None and not allow_unused:
            raise RuntimeError(f"The differentiated Tensor at index {i} appears to not have "
                               "been used in the graph. Set allow_unused=True if this is the "
                               "desired behavior.")
        result.append(g)
    if not create_graph:
        _realize_all(result)
    return tuple(result)


def _accumulate_ready(nodes, failed, buffers, captures, inputs, create_graph):
    """Before ``failed``'s error propagates, accumulate the gradients of the leaves that
    no node from ``failed`` on feeds: PyTorch runs a leaf's ``AccumulateGrad`` as soon as
    its inputs are complete, so those leaves have their ``.grad`` when it raises."""
    blocked, after = set(), False
    for n in nodes:
        after = after or n is failed
        if after:
            blocked.update(fn for fn, _ in n.next_functions if isinstance(fn, AccumulateGrad))
    ready = [(n.variable, buffers[n][0]) for n in nodes
             if isinstance(n, AccumulateGrad) and n not in blocked and n in buffers
             and buffers[n][0] is not None and (inputs is None or (n, 0) in captures)]
    _realize_all([g for _, g in ready])
    with set_grad_enabled(create_graph):
        for leaf, g in ready:
            _accumulate_leaf(leaf, g, create_graph)


def _realize_all(tensors):
    pending = [t for t in tensors if t is not None and t._value is None]
    if pending:
        from ..lazy import realize
        realize(*pending)


def _prune(nodes, target_nodes):
    """Keep only nodes from which some target node can be reached."""
    needed = set(target_nodes)
    for node in reversed(nodes):  # inputs before their users
        if node in needed or any(fn in needed for fn, _ in node.next_functions):
            needed.add(node)
    return [n for n in nodes if n in needed]


def _accumulated(old, g, create_graph):
    if old is None:
        return g if create_graph else Tensor._make(np.array(g._data, copy=True))
    if create_graph:
        return old + g
    with no_grad():
        _lazy.flush()
        _lazy.freeze()
        np.add(old._data, g._data, out=old._data, casting="unsafe")
        old._vc[0] += 1
    return old


def _accumulate_leaf(leaf, g, create_graph, owned=False):
    """Add ``g`` into ``leaf.grad``; ``owned`` means nobody else holds ``g``'s array."""
    if leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
    if g._shape != leaf._shape:
        from ..ops import sum_to_size
        g = sum_to_size(g, leaf.shape)
    home = leaf.__dict__.get("_grad_home")
    if leaf._grad is None and home is not None and not create_graph:
        # an optimizer keeps this leaf's gradient in its arena: write it there
        given = _lazy.home_grad(leaf, home)
        np.copyto(home, g._data, casting="unsafe")
        leaf._grad = given
        return
    if leaf._grad is None and owned:
        leaf._grad = g
        return
    leaf._grad = _accumulated(leaf._grad, g, create_graph)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaves) into the leaves' ``.grad``."""
    tensors = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"got {len(grads)} gradients for {len(tensors)} tensors")
    run(tensors, grads, retain_graph, create_graph,
        inputs=_as_tuple(inputs) if inputs is not None else None, accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` w.r.t. ``inputs``, returned rather than accumulated."""
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if any(not t._requires_grad for t in inputs):
        raise RuntimeError("One of the differentiated Tensors does not require grad")
    grads = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    result = run(outputs, grads, retain_graph, create_graph, inputs=inputs,
                 allow_unused=bool(allow_unused) or materialize_grads, accumulate=False)
    if materialize_grads:
        from ..tensor import zeros_like
        result = tuple(zeros_like(t) if g is None else g for t, g in zip(inputs, result))
    return result


_step_cache.set_leaf_accumulator(_accumulate_leaf)
