"""Recurrent layers, as ``torch.nn``'s: ``RNN``, ``LSTM``, ``GRU`` and their cells.

They are composites of jitgrad ops, so autograd and the lazy recorder see ordinary
ops. A layer projects its whole input sequence with one matmul up front; each time
step is then one ``h @ W_hh.T + b_hh`` and a few elementwise ops. Gate order and
formulas are PyTorch's: LSTM ``i, f, g, o``; GRU ``r, z, n`` with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) * n + z * h``.
Parameter names, shapes, initialisation (U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)))
and error messages are PyTorch's, so ``state_dict``s move between the two.
"""
import math
import numbers
import warnings

from .. import dtypes as dt
from .. import ops
from ..tensor import empty, zeros
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

# --- one time step; ``x`` is the step's input projection ``W_ih x + b_ih`` ----------------


def _rnn_tanh_step(x, h, w_hh, b_hh, w_hr=None):
    return ops.tanh(x + F.linear(h, w_hh, b_hh))


def _rnn_relu_step(x, h, w_hh, b_hh, w_hr=None):
    return ops.relu(x + F.linear(h, w_hh, b_hh))


def _lstm_step(x, state, w_hh, b_hh, w_hr=None):
    h, c = state
    i, f, g, o = ops.chunk(x + F.linear(h, w_hh, b_hh), 4, 1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    h = ops.sigmoid(o) * ops.tanh(c)
    return (h if w_hr is None else F.linear(h, w_hr)), c


def _gru_step(x, h, w_hh, b_hh, w_hr=None):
    n_hidden = h.shape[-1]
    x_rz, x_n = ops.split(x, [2 * n_hidden, n_hidden], 1)
    h_rz, h_n = ops.split(F.linear(h, w_hh, b_hh), [2 * n_hidden, n_hidden], 1)
    r, z = ops.chunk(ops.sigmoid(x_rz + h_rz), 2, 1)
    n = ops.tanh(x_n + r * h_n)
    return (h - n) * z + n  # PyTorch's order of operations for (1 - z) * n + z * h


# mode -> (gates per hidden unit, step)
_MODES = {"RNN_TANH": (1, _rnn_tanh_step), "RNN_RELU": (1, _rnn_relu_step),
          "LSTM": (4, _lstm_step), "GRU": (3, _gru_step)}


def _check_dtype(input, weight):
    if input.dtype is not weight.dtype:
        raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype "
                         f"({weight.dtype}). Convert input: input.to({weight.dtype}), or "
                         f"convert model: model.to({input.dtype})")


def _uniform_init(module):
    stdv = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -stdv, stdv)


# --- multi-layer sequence modules ---------------------------------------------------------

class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: the parameters of every layer and
    direction, argument checks, and the loop over layers, directions and time.

    ``mode`` is ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'`` or ``'GRU'``. Layer ``k``'s
    parameters are ``weight_ih_lk``, ``weight_hh_lk``, ``bias_ih_lk``, ``bias_hh_lk``
    (``weight_hr_lk`` with an LSTM's ``proj_size``), with ``_reverse`` appended for
    the backward direction of a bidirectional module.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 device=None, dtype=None):
        super().__init__()
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                          "non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
        if not isinstance(bias, bool):
            raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first should be of type bool, got: "
                            f"{type(batch_first).__name__}")
        if not isinstance(input_size, int):
            raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
        if input_size <= 0:
            raise ValueError("input_size must be greater than zero")
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: "
                            f"{type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _MODES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gate_size = _MODES[mode][0] * hidden_size
        real_hidden = proj_size or hidden_size
        d = dtype or dt.get_default_dtype()
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(2 if bidirectional else 1):
                layer_input = input_size if layer == 0 else real_hidden * self._directions
                shapes = [("weight_ih", (gate_size, layer_input)),
                          ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                names = []
                for kind, shape in shapes:
                    name = f"{kind}_l{layer}{'_reverse' if direction else ''}"
                    setattr(self, name, Parameter(empty(*shape, dtype=d)))
                    names.append(name)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _directions(self):
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self):
        """The parameters per layer and direction, in registration order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self):
        """Draw every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        _uniform_init(self)

    def flatten_parameters(self):
        """Nothing to do: PyTorch packs weights for cuDNN here, and on the CPU it does
        nothing either. Kept so that scripts that call it run unchanged."""

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    def _expected_hidden_size(self, input, cell=False):
        size = self.hidden_size if cell or not self.proj_size else self.proj_size
        return (self.num_layers * self._directions, input.shape[1], size)

    def _check_hidden(self, hx, input, name="hidden", cell=False):
        expected = self._expected_hidden_size(input, cell)
        if tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected {name} size {expected}, got {list(hx.shape)}")

    def _zeros(self, input, cell=False):
        return zeros(self._expected_hidden_size(input, cell), dtype=input.dtype)

    def _prepare(self, input):
        """``input`` as ``(seq, batch, feature)`` after PyTorch's checks, and whether it was
        batched."""
        if input.ndim not in (2, 3):
            got = f"{input.ndim}D tensor instead" if self.mode.startswith("RNN") \
                else f"{input.ndim}D instead"
            raise ValueError(f"{'RNN' if self.mode.startswith('RNN') else self.mode}: Expected "
                             f"input to be 2D or 3D, got {got}")
        _check_dtype(input, getattr(self, self._all_weights[0][0]))
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")
        if input.ndim == 2:
            return ops.unsqueeze(input, 1), False
        return (ops.transpose(input, 0, 1) if self.batch_first else input), True

    def _run(self, x, states):
        """Every layer and direction over time-major ``x`` from the initial ``states`` (one
        per layer and direction); the last layer's outputs and every final state."""
        gates, step = _MODES[self.mode]
        seq_len, batch = x.shape[0], x.shape[1]
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self._directions):
                index = layer * self._directions + direction
                p = [getattr(self, name) for name in self._all_weights[index]]
                w_ih, w_hh = p[0], p[1]
                b_ih, b_hh = (p[2], p[3]) if self.bias else (None, None)
                w_hr = p[-1] if self.proj_size else None
                # the whole sequence's input projection in one matmul, split into steps
                proj = F.linear(ops.reshape(x, (seq_len * batch, x.shape[2])), w_ih, b_ih)
                steps = ops.split(proj, batch, 0)
                state, hs = states[index], []
                for t in (range(seq_len - 1, -1, -1) if direction else range(seq_len)):
                    state = step(steps[t], state, w_hh, b_hh, w_hr)
                    hs.append(state[0] if self.mode == "LSTM" else state)
                if direction:
                    hs.reverse()
                outputs.append(ops.stack(hs, 0))
                finals.append(state)
            x = outputs[0] if len(outputs) == 1 else ops.cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, finals

    def _output(self, out, batched):
        if not batched:
            return ops.squeeze(out, 1)
        return ops.transpose(out, 0, 1) if self.batch_first else out


class _SingleState(RNNBase):
    """``RNN`` and ``GRU``: one state tensor ``h``."""

    def forward(self, input, hx=None):
        x, batched = self._prepare(input)
        if hx is not None:
            if batched and hx.ndim != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                                   f"{hx.ndim}-D tensor")
            if not batched:
                if hx.ndim != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but "
                                       f"got {hx.ndim}-D tensor")
                hx = ops.unsqueeze(hx, 1)
            self._check_hidden(hx, x)
        else:
            hx = self._zeros(x)
        out, finals = self._run(x, ops.unbind(hx, 0))
        h_n = ops.stack(finals, 0)
        return self._output(out, batched), (h_n if batched else ops.squeeze(h_n, 1))


class RNN(_SingleState):
    """A multi-layer Elman RNN: ``h_t = tanh(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)``.

    Arguments as ``torch.nn.RNN``: ``input_size, hidden_size, num_layers=1,
    nonlinearity='tanh', bias=True, batch_first=False, dropout=0.0,
    bidirectional=False``. ``nonlinearity='relu'`` uses ReLU in place of tanh.
    ``dropout`` applies to each layer's output but the last, while training.
    ``forward(input, hx=None)`` takes ``(L, N, H_in)`` (``(N, L, H_in)`` with
    ``batch_first``) or unbatched ``(L, H_in)`` input and returns ``(output, h_n)``.
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity, args = args[3], args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(modes[nonlinearity], *args, **kwargs)
        self.nonlinearity = nonlinearity


class GRU(_SingleState):
    """A multi-layer gated recurrent unit, with PyTorch's gates (order r, z, n)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Arguments as ``torch.nn.GRU``: ``input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False``. ``forward(input, hx=None)``
    returns ``(output, h_n)``.
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


class LSTM(RNNBase):
    """A multi-layer long short-term memory RNN, with PyTorch's gates (order i, f, g, o)::

        i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*);  g = tanh(...)
        c' = f * c + i * g;  h' = o * tanh(c')

    Arguments as ``torch.nn.LSTM``: ``input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, proj_size=0`` (with
    ``proj_size > 0``, ``h' = W_hr (o * tanh(c'))``). ``forward(input, hx=None)`` takes an
    optional ``(h_0, c_0)`` and returns ``(output, (h_n, c_n))``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input, hx=None):
        x, batched = self._prepare(input)
        if hx is not None:
            h0, c0 = hx
            if batched and (h0.ndim != 3 or c0.ndim != 3):
                raise RuntimeError(f"For batched 3-D input, hx and cx should also be 3-D but "
                                   f"got ({h0.ndim}-D, {c0.ndim}-D) tensors")
            if not batched:
                if h0.ndim != 2 or c0.ndim != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx and cx should also be "
                                       f"2-D but got ({h0.ndim}-D, {c0.ndim}-D) tensors")
                h0, c0 = ops.unsqueeze(h0, 1), ops.unsqueeze(c0, 1)
            self._check_hidden(h0, x, "hidden[0]")
            self._check_hidden(c0, x, "hidden[1]", cell=True)
        else:
            h0, c0 = self._zeros(x), self._zeros(x, cell=True)
        out, finals = self._run(x, list(zip(ops.unbind(h0, 0), ops.unbind(c0, 0))))
        h_n = ops.stack([h for h, _ in finals], 0)
        c_n = ops.stack([c for _, c in finals], 0)
        if not batched:
            h_n, c_n = ops.squeeze(h_n, 1), ops.squeeze(c_n, 1)
        return self._output(out, batched), (h_n, c_n)


# --- single-step cells --------------------------------------------------------------------

class RNNCellBase(Module):
    """What the cells share: ``weight_ih`` ``(num_chunks * hidden_size, input_size)``,
    ``weight_hh`` ``(num_chunks * hidden_size, hidden_size)``, ``bias_ih`` and ``bias_hh``
    (None without ``bias``), initialised from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        d = dtype or dt.get_default_dtype()
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=d))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=d))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=d))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=d))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        _uniform_init(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.__dict__.get("nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _batched(self, input, hx, name):
        """``input`` as ``(N, H_in)`` and whether it was batched, after PyTorch's checks of it
        and of each state tensor in ``hx`` (named ``name``)."""
        if input.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got "
                             f"{input.ndim}D instead")
        for i, h in enumerate(hx):
            if h is not None and h.ndim not in (1, 2):
                label = f"{name}[{i}]" if len(hx) > 1 else name
                raise ValueError(f"{type(self).__name__}: Expected {label} to be 1D or 2D, got "
                                 f"{h.ndim}D instead")
        return (input, True) if input.ndim == 2 else (ops.unsqueeze(input, 0), False)

    def _state(self, hx, x, batched):
        if hx is None:
            return zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
        return hx if batched else ops.unsqueeze(hx, 0)

    def _step(self, step, x, state):
        return step(F.linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh,
                    self.bias_hh)


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU with
    ``nonlinearity='relu'``). ``forward(input, hx=None)`` takes ``(N, H_in)`` or ``(H_in)``
    input and returns ``h'``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, batched = self._batched(input, (hx,), "hidden")
        steps = {"tanh": _rnn_tanh_step, "relu": _rnn_relu_step}
        if self.nonlinearity not in steps:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        h = self._step(steps[self.nonlinearity], x, self._state(hx, x, batched))
        return h if batched else ops.squeeze(h, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o as ``LSTM``). ``forward(input, hx=None)`` takes an
    optional ``(h, c)`` and returns ``(h', c')``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        x, batched = self._batched(input, tuple(hx) if hx is not None else (), "hx")
        if hx is None:
            state = (self._state(None, x, batched),) * 2
        else:
            state = tuple(self._state(h, x, batched) for h in hx)
        h, c = self._step(_lstm_step, x, state)
        return (h, c) if batched else (ops.squeeze(h, 0), ops.squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n as ``GRU``). ``forward(input, hx=None)`` returns ``h'``."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        x, batched = self._batched(input, (hx,), "hidden")
        h = self._step(_gru_step, x, self._state(hx, x, batched))
        return h if batched else ops.squeeze(h, 0)
