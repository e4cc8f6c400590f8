"""Custom differentiable operations: ``jitgrad.autograd.Function``, as PyTorch's.

A subclass defines ``forward(ctx, *args)`` (or ``forward(*args)`` plus
``setup_context(ctx, inputs, output)``) and ``backward(ctx, *grads)`` (or its
alias ``vjp``), and is called as ``MyFn.apply(*args)``. ``forward`` runs with
grad mode off, on tensors and non-tensor arguments alike; when grad mode is on
and some tensor argument requires grad, its outputs get one node, an instance of
``MyFnBackward``, as their ``grad_fn``. That node is also the ``ctx`` the user's
methods receive: attributes set on it in ``forward`` are there in ``backward``,
and tensors passed to ``ctx.save_for_backward`` come back from
``ctx.saved_tensors`` after the check that no in-place operation changed them
(``SavedTensor``, as for built-in ops).

The backward pass calls the node's ``apply`` with one gradient per output;
``apply`` calls the user's ``backward`` with grad mode as the engine set it
(on under ``create_graph=True``, so a backward written in jitgrad ops is itself
differentiable), checks the number, kind and shape of the gradients it returns
and hands one per tensor input back to the engine.

In lazy mode ``forward`` is recorded like any other code run under ``no_grad``;
the outputs that get the node are computed before it is attached, so later ops
see them as realized inputs whose ``grad_fn`` is a made node (a backward
through them always runs the engine, never a cached training step).
"""
import functools
import inspect
import sys
import warnings

from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .graph import _FREED, Node, SavedTensor, _counter, _edge

__all__ = ["Function", "FunctionCtx", "BackwardCFunction", "once_differentiable"]

_Tensor = None


def _tensor_cls():
    global _Tensor
    if _Tensor is None:
        import jitgrad
        _Tensor = jitgrad.Tensor
    return _Tensor


def _runtime_hook(name):
    """A hook the lazy runtime sets on the tensor module (``_changing``, ``_tls``), or None."""
    return getattr(sys.modules.get(_tensor_cls().__module__), name, None)


def _realize(*tensors):
    import jitgrad
    jitgrad.realize(*tensors)


_LEGACY = ("Legacy autograd function with non-static forward method is deprecated. Please use "
           "new-style autograd function with static forward method. (Example: "
           "https://pytorch.org/docs/stable/autograd.html#torch.autograd.Function)")


class FunctionCtx:
    """What ``forward`` (or ``setup_context``) tells the backward pass through ``ctx``."""

    def save_for_backward(self, *tensors):
        """Keep ``tensors`` (or ``None``) for ``backward``, read back as ``ctx.saved_tensors``."""
        self.to_save = tensors

    def save_for_forward(self, *tensors):
        """Kept for PyTorch's forward-mode AD; jitgrad has no forward mode."""
        self.saved_for_forward = tensors

    def mark_dirty(self, *args):
        """Declare the input tensors ``forward`` modified in place (they must be returned)."""
        self.dirty_tensors = args

    def mark_non_differentiable(self, *args):
        """Declare outputs that get no gradient (they do not require grad)."""
        self.non_differentiable = args

    def set_materialize_grads(self, value):
        """``False``: ``backward`` receives ``None`` for outputs that got no gradient,
        instead of zeros."""
        self.materialize_grads = value


class BackwardCFunction(Node, FunctionCtx):
    """The node (and ``ctx``) of one ``Function.apply`` call; ``MyFnBackward`` subclasses it.

    Instances have a ``__dict__``: the user's ``forward`` may set any attribute.
    """

    _forward_cls = None

    def __init__(self):
        self.next_functions = ()
        self.op = None
        self.attrs = None
        self._saved = {}
        self._seq = -2  # set once the inputs' nodes exist (see _apply)
        self._inputs_meta = ()
        self._n_outputs = 0
        self._pre_hooks = None
        self._hooks = None
        self._watchers = None
        self.metadata = {}
        self.to_save = None
        self.dirty_tensors = None
        self.non_differentiable = None
        self.materialize_grads = True
        self._needs_input_grad = ()
        self._is_tensor_input = ()
        self._input_dtypes = ()
        self._output_meta = ()

    __repr__ = object.__repr__  # <jitgrad.autograd.function.MyFnBackward object at 0x...>

    @property
    def needs_input_grad(self):
        """One bool per argument of ``forward``: whether it is a tensor that requires grad."""
        return self._needs_input_grad

    @property
    def saved_tensors(self):
        """The tensors given to ``save_for_backward``, checked against in-place changes."""
        saved = self._saved
        if saved is None:
            raise RuntimeError(_FREED)
        entries = saved.get("saved")
        if entries is None:
            return ()
        return tuple(None if s is None else s.unpack(self) for s in entries)

    saved_variables = saved_tensors

    def apply(self, grads):
        """The user's ``backward`` on the outputs' gradients: one gradient per tensor input."""
        cls = self._forward_cls
        name = type(self).__name__
        Tensor = _tensor_cls()
        args = []
        for g, meta in zip(grads, self._output_meta):
            if g is None and meta is not None and self.materialize_grads:
                import jitgrad
                g = jitgrad.zeros(meta[0], dtype=meta[1])
            args.append(g)
        backward_fn, vjp_fn = cls.backward, cls.vjp
        if backward_fn is not Function.backward and vjp_fn is not Function.vjp:
            raise RuntimeError("Implementing both 'backward' and 'vjp' for a custom Function is "
                               "not allowed. You should only implement one of them.")
        user_fn = vjp_fn if vjp_fn is not Function.vjp else backward_fn
        result = user_fn(self, *args)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self._is_tensor_input)
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(result)})")
        out = []
        for i, (r, is_tensor) in enumerate(zip(result, self._is_tensor_input)):
            if not is_tensor:
                if r is not None:
                    raise RuntimeError(
                        f"function {name} returned a gradient different than None at position "
                        f"{i + 1}, but the corresponding forward input was not a Variable")
                continue
            if r is not None and not isinstance(r, Tensor):
                raise RuntimeError(f"expected Variable or None (got {type(r).__name__})")
            out.append(r)
        for i, (r, (shape, _), dtype, (fn, _)) in enumerate(
                zip(out, self._inputs_meta, self._input_dtypes, self.next_functions)):
            if r is None or fn is None:
                out[i] = None  # (an input that needs no gradient: the engine drops it)
                continue
            if tuple(r.shape) != shape:
                if not _expandable(shape, tuple(r.shape)):
                    raise RuntimeError(
                        f"Function {name} returned an invalid gradient at index {i} - got "
                        f"{list(r.shape)} but expected shape compatible with {list(shape)}")
                r = r.sum_to_size(shape)
            if r.dtype is not dtype:
                r = r.to(dtype)
            out[i] = r
        return out


def _expandable(shape, target):
    """Whether ``shape`` broadcasts to ``target`` (a larger gradient is summed back)."""
    if len(shape) > len(target):
        return False
    for a, b in zip(reversed(shape), reversed(target)):
        if a != b and a != 1:
            return False
    return True


class FunctionMeta(type):
    """Gives each ``Function`` subclass its node class, ``<Name>Backward``."""

    def __init__(cls, name, bases, attrs):
        backward_cls = type(name + "Backward", (BackwardCFunction,), {"_forward_cls": cls})
        backward_cls.__module__ = __name__
        backward_cls.__qualname__ = name + "Backward"
        cls._backward_cls = backward_cls
        super().__init__(name, bases, attrs)


class _SingleLevelFunction(FunctionCtx, metaclass=FunctionMeta):

    @staticmethod
    def forward(*args, **kwargs):
        """The computation, on tensors (and other arguments), run with grad mode off."""
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """With a ``forward`` that takes no ``ctx``: save what ``backward`` needs."""
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        """The inputs' gradients from the outputs' (one per ``forward`` argument, ``None``
        for non-tensors and inputs that need none)."""
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode AD.")

    vjp = backward  # an alias: a subclass defines one of them

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")


class Function(_SingleLevelFunction):
    """Base class of custom differentiable operations; call them as ``MyFn.apply(*args)``."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            f"{self.__class__} should not be instantiated. Methods on autograd functions are all "
            "static, so you should invoke them on the class itself. Instantiating an autograd "
            "function will raise an error in a future version of PyTorch.",
            DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(_LEGACY)

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward`` on ``args`` and, when autograd records it, attach the node."""
        setup_ctx = cls.setup_context is not _SingleLevelFunction.setup_context
        if setup_ctx:  # (inputs as setup_context sees them: defaults filled in)
            bound = inspect.signature(cls.forward).bind(*args, **kwargs)
            bound.apply_defaults()
            args, kwargs = bound.args, {}
        return _apply(cls, args, kwargs, setup_ctx)


def _apply(cls, args, kwargs, setup_ctx):
    Tensor = _tensor_cls()
    ctx = cls._backward_cls()
    inputs = [a for a in args if isinstance(a, Tensor)]
    ctx._is_tensor_input = tuple(isinstance(a, Tensor) for a in args)
    ctx._needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
    executable = is_grad_enabled() and any(t._requires_grad for t in inputs)
    if executable:
        # the inputs' edges (their nodes made now, in lazy mode) and then the node's place in
        # the backward order, after every node that feeds it
        ctx.next_functions = tuple(_edge(t) for t in inputs)
        ctx._inputs_meta = tuple((tuple(t._shape), t._npdtype) for t in inputs)
        ctx._input_dtypes = tuple(t.dtype for t in inputs)
        ctx._seq = next(_counter)
        capture = getattr(_runtime_hook("_tls"), "capture", None)
        if capture is not None:  # a jitgrad.jit replay would not attach the node
            capture.fail("a custom autograd.Function made a grad_fn")
    with no_grad():
        if setup_ctx:
            output = cls.forward(*args)
            cls.setup_context(ctx, args, output)
        else:
            output = cls.forward(ctx, *args, **kwargs)
    return _wrap_outputs(ctx, inputs, output, executable)


def _wrap_outputs(ctx, inputs, output, executable):
    Tensor = _tensor_cls()
    is_tuple = isinstance(output, tuple)
    outs = list(output) if is_tuple else [output]
    dirty = ctx.dirty_tensors or ()
    if dirty and not all(any(o is t for o in outs) for t in dirty):
        raise RuntimeError("Some elements marked as dirty during the forward method were not "
                           "returned as output. The inputs that are modified inplace must all be "
                           "outputs of the Function.")
    dirty_ids = {id(t) for t in dirty}
    non_diff = {id(t) for t in (ctx.non_differentiable or ())}
    input_ids = {id(t) for t in inputs}
    changing = None
    if executable:
        for t in dirty:
            if t._grad_fn is None and t._requires_grad:
                raise RuntimeError("a leaf Variable that requires grad has been used in an "
                                   "in-place operation.")
        pending = [o for o in outs if isinstance(o, Tensor) and o._value is None]
        if pending:  # computed before the node is attached (see the module's docstring)
            _realize(*pending)
        if dirty:
            changing = _runtime_hook("_changing")
    meta, dirty_views = [], []
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            meta.append(None)
            continue
        meta.append((tuple(o.shape), o.dtype))
        differentiable = executable and id(o) not in non_diff and o.dtype.is_floating_point
        if id(o) in dirty_ids:
            if differentiable:
                if o._view_fn is not None:  # recorded on its base, below
                    dirty_views.append((i, o))
                    continue
                if changing is not None:
                    changing(o)  # recorded ops keep the grad_fn and version they saw
                o._vc[0] += 1  # PyTorch bumps a dirty tensor's version once more
                o.grad_fn, o._output_nr, o._requires_grad = ctx, i, True
            continue
        if id(o) in input_ids:  # an input returned as is: a new tensor over its storage
            o = outs[i] = o._alias(ctx if differentiable else None, i)
            continue
        if differentiable:
            if o._view_fn is not None:  # a view made in forward: its gradient is the
                o.__dict__.pop("_view_fn", None)  # node's, never remade from its base
                o.__dict__.pop("_base", None)
            o.grad_fn, o._output_nr, o._requires_grad = ctx, i, True
    ctx._output_meta = tuple(meta)
    ctx._n_outputs = len(outs)
    for i, o in dirty_views:
        # a view changed in place: as for a built-in in-place op on a view, its base records
        # the change (CopySlices) with the node's output as the new values, and the view's
        # grad_fn is remade from the base (the copy bumps the version, as PyTorch's marking)
        with enable_grad():
            o.copy_(o._alias(ctx, i))
    to_save = ctx.to_save
    if to_save:
        saved = []
        for k, t in enumerate(to_save):
            if t is None:
                saved.append(None)
            elif not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{k} is of type {type(t).__name__}")
            elif t._grad_fn is ctx:  # an output: kept without a reference to itself,
                saved.append(SavedTensor(t, ctx, t._output_nr))  # named as ctx's output
            else:
                saved.append(SavedTensor(t))
        ctx._saved = {"saved": tuple(saved)}
    ctx.to_save = None
    return tuple(outs) if is_tuple else outs[0]


# --- once_differentiable ---------------------------------------------------------

_TWICE = ("trying to differentiate twice a function that was marked with "
          "@once_differentiable")


class _DelayedError:
    """The op of an ``Error`` node: differentiating through it raises ``msg``."""

    name = "Error"

    def __init__(self, msg):
        self.msg = msg

    def backward(self, node, grads):
        raise RuntimeError(self.msg)


class Error(Node):
    """The node ``once_differentiable`` puts on a backward's results while a graph is built."""

    __slots__ = ()


def once_differentiable(fn):
    """Run a ``backward`` with grad mode off; its results raise if differentiated again."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with no_grad():
            outputs = fn(ctx, *args)
        if not is_grad_enabled():
            return outputs
        Tensor = _tensor_cls()
        if not any(isinstance(a, Tensor) and a._requires_grad for a in args):
            return outputs
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        leaves = []  # each result as a leaf that requires grad, as PyTorch's DelayedError
        for v in outputs:
            if isinstance(v, Tensor):
                if v._value is None:
                    _realize(v)
                v = Tensor._make(v._value, v.dtype.is_floating_point)
            leaves.append(v)
        tensors = [v for v in leaves if isinstance(v, Tensor)]
        node = Error(_DelayedError(_TWICE), None, tensors, len(tensors))
        wrapped, k = [], 0
        for v in leaves:
            if isinstance(v, Tensor):
                if v._requires_grad:
                    v = v._alias(node, k)
                k += 1
            wrapped.append(v)
        return wrapped[0] if single else tuple(wrapped)

    return wrapper
