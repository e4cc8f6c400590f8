"""Pictures of the dynamic computational graph, as the seed document draws them.

    g = jg.viz.draw(z, params=dict(x=x, y=y, z=z))
    print(g.source)          # DOT text, always available
    g.render("z.svg")        # through Graphviz's ``dot`` program, when installed

The picture shows what autograd keeps for a backward pass, found only through the
public attributes of tensors and ``grad_fn`` objects:

* tensors as boxes listing ``data``, ``requires_grad``, ``grad``, ``grad_fn`` and
  ``is_leaf`` (leaves green, interior tensors blue with a dashed border, the tensor
  the picture starts from with a thick border);
* ``...Backward0`` nodes (purple) reached through ``.grad_fn`` and
  ``.next_functions``, each drawn once however many paths reach it;
* ``AccumulateGrad`` nodes and the leaf in their ``.variable``;
* arrows in the direction gradients flow in ``backward()``: from the output's
  ``grad_fn`` down to the ``AccumulateGrad`` that writes a leaf's ``.grad``;
* dotted lines to the input tensors a node saved for its backward (freed by
  ``backward()`` unless ``retain_graph=True``, as in PyTorch).

Interior tensors other than the output appear when they are saved by a node or
named in ``params`` (a ``retain_grad()`` tensor shows its ``.grad`` there).
Graphviz is not a Python dependency: ``.source`` works without it, and rendering
without it raises :class:`GraphvizNotFoundError` saying how to install it.
"""
import collections
import html
import os
import shutil
import subprocess

import numpy as np

__all__ = ["draw", "Graph", "GraphvizNotFoundError"]

INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
                "graphviz; conda: conda install graphviz), or write the DOT text with "
                ".save(path) / .render(path, format='dot') and render it elsewhere")

_FORMATS = ("svg", "png", "pdf", "dot", "gv")

# the seed's colours: green boxes for variables, purple ones for operations
_LEAF = dict(fillcolor="#c9e7c4", color="#3f7d3a")
_INTERIOR = dict(fillcolor="#dcebf7", color="#3d6f99", style='"filled,dashed"')
_OP = dict(fillcolor="#ddd0f1", color="#6a4c9c", style='"rounded,filled"')
_ACC = dict(fillcolor="#efe9f8", color="#6a4c9c", style='"rounded,filled"')


class GraphvizNotFoundError(RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, which is not on ``PATH``."""


def draw(tensors, params=None, show_data=True, show_grad=True, show_saved=True,
         max_elements=6, rankdir="TB"):
    """The backward graph behind ``tensors`` (one tensor or a sequence) as a :class:`Graph`.

    ``params`` (a dict or ``named_parameters()``) names tensors, as torchviz's
    ``make_dot(y, params=dict(model.named_parameters()))`` does; a non-leaf tensor named
    there is drawn beside its ``grad_fn``. ``show_data`` / ``show_grad`` print the values
    (summarised beyond ``max_elements``), ``show_saved`` the tensors nodes saved for
    backward. ``rankdir="TB"`` puts the output on top; ``"BT"`` puts the leaves there.
    """
    import jitgrad
    tensor_type = jitgrad.Tensor
    roots = [tensors] if isinstance(tensors, tensor_type) else \
        list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    for t in roots:
        if not isinstance(t, tensor_type):
            raise TypeError(f"draw() expects tensors, got {type(t).__name__}")
    if rankdir not in ("TB", "BT", "LR", "RL"):
        raise ValueError(f"rankdir must be 'TB', 'BT', 'LR' or 'RL', got {rankdir!r}")
    named = dict(params.items() if isinstance(params, dict) else (params or ()))
    names = {id(t): name for name, t in named.items() if isinstance(t, tensor_type)}
    b = _Builder(tensor_type, names, roots, show_data, show_grad, show_saved, max_elements)
    with jitgrad.no_grad():
        for t in roots:
            b.tensor(t)
        for t in named.values():
            if isinstance(t, tensor_type) and not t.is_leaf:
                b.tensor(t)
        b.walk()
    return Graph(b.dot(rankdir), b.n_nodes, len(b.edges))


class _Builder:
    def __init__(self, tensor_type, names, roots, show_data, show_grad, show_saved, max_elements):
        self.tensor_type = tensor_type
        self.names, self.root_ids = names, {id(t) for t in roots}
        self.show_data, self.show_grad, self.show_saved = show_data, show_grad, show_saved
        self.max_elements = max_elements
        self.ids = {}        # id(tensor or node) -> DOT node id
        self.keep = []       # the objects behind those ids, alive while we draw
        self.lines, self.edges = [], []
        self.queue = collections.deque()
        self.n_nodes = 0

    def _new(self, obj, prefix):
        key = f"{prefix}{len(self.keep)}"
        self.ids[id(obj)] = key
        self.keep.append(obj)
        self.n_nodes += 1
        return key

    def tensor(self, t):
        """The DOT id of ``t``'s box, made (with the edge to its grad_fn) the first time."""
        key = self.ids.get(id(t))
        if key is not None:
            return key
        key = self._new(t, "t")
        leaf = t.is_leaf
        style = dict(_LEAF if leaf else _INTERIOR)
        if id(t) in self.root_ids:
            style["penwidth"] = "2.5"
        self.lines.append(f"{key} [label=<{self._tensor_label(t)}> {_attrs(style)}]")
        if not leaf:
            self.edge(key, self.fn(t.grad_fn), style="dashed", label="grad_fn")
        return key

    def fn(self, node):
        """The DOT id of a grad_fn node, queued for the walk the first time it is seen."""
        key = self.ids.get(id(node))
        if key is None:
            key = self._new(node, "n")
            self.queue.append((node, key))
        return key

    def edge(self, a, b, **attrs):
        self.edges.append(f"{a} -> {b} [{_attrs(attrs)}]" if attrs else f"{a} -> {b}")

    def walk(self):
        while self.queue:
            node, key = self.queue.popleft()
            name = _node_name(node)
            acc = _is_accumulate_grad(node)
            self.lines.append(f"{key} [label={_quote(name)} {_attrs(_ACC if acc else _OP)}]")
            for nxt, _ in getattr(node, "next_functions", ()) or ():
                if nxt is not None:
                    self.edge(key, self.fn(nxt))
            if acc:
                self.edge(key, self.tensor(node.variable), label="grad", color="#3f7d3a")
            if self.show_saved:
                for label, t in _saved_tensors(node, self.tensor_type):
                    self.edge(key, self.tensor(t), style="dotted", arrowhead="none",
                              label=label, color="#808080", fontcolor="#808080")

    def _tensor_label(self, t):
        name = self.names.get(id(t))
        if name is None:
            name = "output" if id(t) in self.root_ids else "tensor"
        shape = tuple(t.shape)
        head = f"<B>{_esc(name)}&#160;</B>" if shape else f"<B>{_esc(name)}</B>"
        if shape:  # (the space inside the bold text: SVG viewers drop a leading one)
            head += f"{_esc(str(list(shape)))}"
        if t.dtype is not _default_dtype():
            head += f"&#160;&#160;{_esc(str(t.dtype).replace('jitgrad.', ''))}"
        rows = []
        if self.show_data:
            rows.append(("data", _format_values(t, self.max_elements)))
        rows.append(("requires_grad", str(t.requires_grad)))
        if self.show_grad:
            # a non-leaf's .grad is None unless it retains it (reading it would warn)
            g = t.grad if (t.is_leaf or t.retains_grad) else None
            rows.append(("grad", "None" if g is None else _format_values(g, self.max_elements)))
        rows.append(("grad_fn", "None" if t.is_leaf else _node_name(t.grad_fn)))
        rows.append(("is_leaf", str(t.is_leaf)))
        cells = [f'<TR><TD COLSPAN="2" ALIGN="CENTER">{head}</TD></TR>']
        for k, v in rows:
            value = '<BR ALIGN="LEFT"/>'.join(_esc(line) for line in v.split("\n"))
            if "\n" in v:
                value += '<BR ALIGN="LEFT"/>'
            cells.append(f'<TR><TD ALIGN="RIGHT" VALIGN="TOP"><FONT COLOR="#555555">{k}:</FONT>'
                         f'</TD><TD ALIGN="LEFT" BALIGN="LEFT">{value}</TD></TR>')
        return ('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'
                + "".join(cells) + "</TABLE>")

    def dot(self, rankdir):
        head = [
            "digraph backward_graph {",
            f"graph [rankdir={rankdir} nodesep=0.35 ranksep=0.45 fontname=Helvetica]",
            'node [shape=box style=filled fontname=Helvetica fontsize=11 margin="0.12,0.06"]',
            "edge [fontname=Helvetica fontsize=9 color=\"#444444\" arrowsize=0.8]",
        ]
        return "\n".join(head + self.lines + self.edges + ["}"]) + "\n"


class Graph:
    """A drawn graph: ``.source`` (DOT text), ``.render(path)``, ``.pipe(format)``, and
    an SVG for notebooks (``_repr_svg_``) when Graphviz is installed."""

    def __init__(self, source, n_nodes=None, n_edges=None):
        self.source = source
        self.n_nodes, self.n_edges = n_nodes, n_edges

    def __str__(self):
        return self.source

    def __repr__(self):
        hint = "" if _dot_program() else (" (Graphviz's dot is not installed: apt-get install "
                                          "graphviz to see it as a picture)")
        return (f"<jitgrad.viz.Graph: {self.n_nodes} nodes, {self.n_edges} edges; "
                f".source holds the DOT text{hint}>")

    def pipe(self, format="svg"):
        """The picture as bytes (``format`` 'svg', 'png', 'pdf'; 'dot' gives the source)."""
        format = _check_format(format)
        if format in ("dot", "gv"):
            return self.source.encode()
        dot = _dot_program()
        if dot is None:
            raise GraphvizNotFoundError(
                f"rendering the graph as {format.upper()} needs Graphviz's 'dot' program, which "
                f"was not found on PATH: {INSTALL_HINT}")
        args = [dot, f"-T{format}"]
        if format == "png":
            args.append("-Gdpi=110")
        proc = subprocess.run(args, input=self.source.encode(), capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"Graphviz's dot failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def render(self, path, format=None):
        """Write the picture to ``path`` (format from ``format``, else the file's
        extension, else SVG); returns ``path``."""
        if format is None:
            ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
            format = ext if ext in _FORMATS else "svg"
        data = self.pipe(format)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def save(self, path):
        """Write the DOT text to ``path``; returns ``path``."""
        return self.render(path, format="dot")

    def _repr_svg_(self):
        if _dot_program() is None:
            return None  # notebooks fall back to repr(), which says what to install
        return self.pipe("svg").decode()


def _dot_program():
    return shutil.which("dot")


def _check_format(format):
    fmt = str(format).lower()
    if fmt not in _FORMATS:
        raise ValueError(f"format must be one of {', '.join(_FORMATS)}, got {format!r}")
    return fmt


def _is_accumulate_grad(node):
    return type(node).__name__ == "AccumulateGrad" and hasattr(node, "variable")


def _node_name(node):
    name = getattr(node, "name", None)
    return name() if callable(name) else type(node).__name__


def _saved_tensors(node, tensor_type):
    """(label, tensor) for each input tensor ``node`` saved for backward; nothing once
    backward freed them, or for saved outputs (kept as data, not as tensor objects)."""
    saved = getattr(node, "_saved", None)
    if not isinstance(saved, dict):
        return []
    out = []
    for key, item in saved.items():
        t = getattr(item, "tensor", None)
        if isinstance(t, tensor_type):
            out.append((f"saved {key}", t))
    return out


def _default_dtype():
    import jitgrad
    return jitgrad.float32


def _format_values(t, max_elements):
    """Values as PyTorch prints them (``1.0``, ``[5., 1., 7.]``), summarised with ``...``
    beyond ``max_elements`` values."""
    a = np.asarray(t.detach().numpy())
    if a.ndim == 0:
        v = a[()]
        if a.dtype.kind == "f":
            return np.format_float_positional(v, precision=4, unique=True, trim="0") \
                if v == 0 or 1e-4 <= abs(v) < 1e8 else \
                np.format_float_scientific(v, precision=4, unique=True, trim="0")
        return str(v.item())
    limit = max(int(max_elements), 1)
    # numpy summarises an axis only past 2 * edgeitems: keep about max_elements in all
    edge = max(1, limit // (2 * max(1, sum(n > 1 for n in a.shape))))
    return np.array2string(a, precision=4, separator=", ", threshold=limit,
                           edgeitems=edge, max_line_width=48)


def _esc(text):
    return html.escape(str(text), quote=True)


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _attrs(attrs):
    parts = []
    for k, v in attrs.items():
        v = str(v)
        parts.append(f"{k}={v if v.startswith(chr(34)) else _quote(v)}")
    return " ".join(parts)
