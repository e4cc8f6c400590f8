"""jg.viz.draw: the backward graph as DOT text (and SVG/PNG through Graphviz when it is
installed), checked by parsing the DOT: node ids, labels, edges and their kinds."""
import collections
import contextlib
import html
import io
import os
import re
import shutil
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import jitgrad as jg
from jitgrad import viz
from jitgrad.examples import seed

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed "
                               "(apt-get install graphviz)")

_NODE = re.compile(r'^(\w+) \[label=(<.*>|"(?:[^"\\]|\\.)*") ?(.*)\]$')
_EDGE = re.compile(r"^(\w+) -> (\w+)(?: \[(.*)\])?$")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def _attrs(text):
    return {k: v.strip('"') for k, v in _ATTR.findall(text or "")}


def _rows(label):
    """A label's text, one string per table row ("data: 1.0"), whitespace squeezed."""
    if label.startswith('"'):
        return [label[1:-1]]
    rows = []
    for row in label.split("</TR>"):
        text = re.sub(r"<BR[^>]*>|</TD>", " ", row)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        text = " ".join(text.split())
        if text:
            rows.append(text)
    return rows


Node = collections.namedtuple("Node", "id rows attrs")
Edge = collections.namedtuple("Edge", "a b attrs")


class Parsed:
    def __init__(self, source):
        lines = source.strip().splitlines()
        assert lines[0].startswith("digraph ") and lines[-1] == "}"
        self.nodes, self.edges = {}, []
        for line in lines[1:-1]:
            if line.startswith(("graph ", "node ", "edge ")):
                continue
            m = _EDGE.match(line)
            if m:
                self.edges.append(Edge(m[1], m[2], _attrs(m[3])))
                continue
            m = _NODE.match(line)
            assert m, f"unparsed DOT line: {line}"
            assert m[1] not in self.nodes, f"node id {m[1]} declared twice"
            self.nodes[m[1]] = Node(m[1], _rows(m[2]), _attrs(m[3]))
        for e in self.edges:
            assert e.a in self.nodes and e.b in self.nodes, f"edge to an undeclared node: {e}"

    def boxes(self):
        return [n for n in self.nodes.values() if len(n.rows) > 1]

    def tensors(self):
        """Named tensor boxes by their title (the first row's first word); unnamed saved
        tensors (titled "tensor") are left out."""
        out = {}
        for n in self.boxes():
            title = n.rows[0].split()[0]
            if title != "tensor":
                assert title not in out, f"two tensor boxes titled {title}"
                out[title] = n
        return out

    def ops(self):
        return [n for n in self.nodes.values() if len(n.rows) == 1]

    def title(self, node_id):
        n = self.nodes[node_id]
        return n.rows[0].split()[0]

    def kind(self, edge):
        style = edge.attrs.get("style")
        return {"dashed": "grad_fn", "dotted": "saved", None: "flow"}[style]

    def edge_set(self, kind=None):
        return sorted((self.title(e.a), self.title(e.b), self.kind(e)) for e in self.edges
                      if kind is None or self.kind(e) == kind)


def _row(node, key):
    found = [r for r in node.rows if r.startswith(key + ":")]
    assert len(found) == 1, (key, node.rows)
    return found[0][len(key) + 1:].strip()


def _seed_graph():
    x = jg.tensor(1.0, requires_grad=True)
    y = jg.tensor(2.0)
    z = x * y
    return x, y, z


# --- the seed's figure: z = x * y -----------------------------------------------

def test_seed_figure_nodes_and_edges_before_backward():
    x, y, z = _seed_graph()
    g = Parsed(jg.viz.draw(z, params=dict(x=x, y=y, z=z)).source)
    boxes = g.tensors()
    assert sorted(boxes) == ["x", "y", "z"]
    assert sorted(n.rows[0] for n in g.ops()) == ["AccumulateGrad", "MulBackward0"]
    assert len(g.nodes) == 5
    # the backward flow and the links to tensors, exactly as the seed's figure has them
    assert [e for e in g.edge_set() if e[2] != "saved"] == [
        ("AccumulateGrad", "x", "flow"),
        ("MulBackward0", "AccumulateGrad", "flow"),
        ("z", "MulBackward0", "grad_fn"),
    ]
    # y feeds the multiplication without requiring grad: MulBackward0 saved it
    saved = g.edge_set("saved")
    assert ("MulBackward0", "y", "saved") in saved
    assert set(saved) <= {("MulBackward0", "x", "saved"), ("MulBackward0", "y", "saved")}
    # the boxes list what the seed's snippet prints for each variable
    expect = {"x": ("1.0", "True", "None", "None", "True"),
              "y": ("2.0", "False", "None", "None", "True"),
              "z": ("2.0", "True", "None", "MulBackward0", "False")}
    for name, values in expect.items():
        got = tuple(_row(boxes[name], k) for k in
                    ("data", "requires_grad", "grad", "grad_fn", "is_leaf"))
        assert got == values, name
    # leaves look different from interior tensors; the output has a thick border
    assert boxes["x"].attrs["fillcolor"] == boxes["y"].attrs["fillcolor"]
    assert boxes["x"].attrs["fillcolor"] != boxes["z"].attrs["fillcolor"]
    assert "dashed" in boxes["z"].attrs["style"] and "dashed" not in boxes["x"].attrs.get(
        "style", "")
    assert float(boxes["z"].attrs["penwidth"]) > 1 and "penwidth" not in boxes["x"].attrs


def test_seed_figure_after_backward_shows_the_leafs_grad():
    x, y, z = _seed_graph()
    z.backward(retain_graph=True)
    g = Parsed(jg.viz.draw(z, params=dict(x=x, y=y, z=z)).source)
    boxes = g.tensors()
    assert _row(boxes["x"], "grad") == "2.0"
    assert _row(boxes["y"], "grad") == "None"
    assert _row(boxes["z"], "grad") == "None"  # not a leaf, not retained
    assert ("AccumulateGrad", "x", "flow") in g.edge_set()


def test_backward_frees_saved_tensors_so_they_leave_the_picture():
    x, y, z = _seed_graph()
    z.backward()
    g = Parsed(jg.viz.draw(z, params=dict(x=x, y=y, z=z)).source)
    assert sorted(g.tensors()) == ["x", "z"]
    assert g.edge_set("saved") == []
    assert _row(g.tensors()["x"], "grad") == "2.0"


def test_seed_figure_without_saved_tensors_and_without_values():
    x, y, z = _seed_graph()
    g = Parsed(jg.viz.draw(z, params=dict(x=x, z=z), show_saved=False, show_data=False,
                           show_grad=False).source)
    assert sorted(g.tensors()) == ["x", "z"]
    assert len(g.edges) == 3
    for box in g.tensors().values():
        assert not any(r.startswith(("data:", "grad:")) for r in box.rows)
        assert _row(box, "requires_grad") == "True"


def test_vector_values_and_grads():
    x = jg.tensor([0.0, 2.0, 8.0], requires_grad=True)
    y = jg.tensor([5.0, 1.0, 7.0], requires_grad=True)
    z = x * y
    z.backward(jg.FloatTensor([1.0, 1.0, 1.0]))
    boxes = Parsed(jg.viz.draw(z, params=dict(x=x, y=y)).source).tensors()
    assert boxes["x"].rows[0] == "x [3]"
    squeeze = lambda s: s.replace(" ", "")  # noqa: E731
    assert squeeze(_row(boxes["x"], "data")) == "[0.,2.,8.]"
    assert squeeze(_row(boxes["x"], "grad")) == "[5.,1.,7.]"
    assert squeeze(_row(boxes["y"], "grad")) == "[0.,2.,8.]"
    assert squeeze(_row(boxes["output"], "data")) == "[0.,2.,56.]"  # unnamed root


def test_max_elements_summarises_data():
    x = jg.arange(100.0, requires_grad=True)
    s = x.sum()
    short = _row(Parsed(jg.viz.draw(s, params=dict(x=x)).source).tensors()["x"], "data")
    assert "..." in short and "50." not in short and short.startswith("[ 0.,")
    full = _row(Parsed(jg.viz.draw(s, params=dict(x=x), max_elements=1000).source)
                .tensors()["x"], "data")
    assert "..." not in full and "50.," in full and "99.]" in full
    m = jg.ones(20, 30, requires_grad=True)
    rows = _row(Parsed(jg.viz.draw(m.sum(), params=dict(m=m), max_elements=4).source)
                .tensors()["m"], "data")
    assert rows.count("1.") <= 4
    col = jg.arange(64.0).reshape(64, 1).requires_grad_()
    rows = _row(Parsed(jg.viz.draw(col.sum(), params=dict(c=col)).source).tensors()["c"],
                "data").replace(" ", "")
    assert rows == "[[0.],[1.],[2.],...,[61.],[62.],[63.]]"


# --- deeper graphs -----------------------------------------------------------------

def _unique_fns(root):
    """Every grad_fn reachable from ``root``, found independently of jg.viz."""
    seen, order, stack = set(), [], [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        order.append(fn)
        stack.extend(f for f, _ in fn.next_functions)
    return order


def _mlp_loss():
    jg.manual_seed(0)
    model = jg.nn.Sequential(jg.nn.Linear(3, 4), jg.nn.ReLU(), jg.nn.Linear(4, 2))
    x = jg.randn(5, 3)
    target = jg.randn(5, 2)
    loss = jg.nn.functional.mse_loss(model(x), target)
    return model, loss


def test_mlp_loss_one_node_per_grad_fn_and_params_labels():
    model, loss = _mlp_loss()
    params = dict(model.named_parameters())
    g = Parsed(jg.viz.draw(loss, params=params).source)
    fns = _unique_fns(loss)
    assert sorted(n.rows[0] for n in g.ops()) == sorted(fn.name() for fn in fns)
    accs = {n.id for n in g.ops() if n.rows == ["AccumulateGrad"]}
    into_boxes = [e for e in g.edges if g.kind(e) == "flow" and len(g.nodes[e.b].rows) > 1]
    assert len(accs) == len(params) and {e.a for e in into_boxes} == accs
    assert len(into_boxes) == len(params)
    n_next = sum(1 for fn in fns for f, _ in fn.next_functions if f is not None)
    assert sum(1 for e in g.edges if g.kind(e) == "flow" and len(g.nodes[e.b].rows) == 1) \
        == n_next
    boxes = g.tensors()
    for name, p in params.items():
        assert boxes[name].rows[0] == f"{name} {list(p.shape)}"
        assert _row(boxes[name], "is_leaf") == "True"
        assert _row(boxes[name], "grad") == "None"
        into = [e for e in g.edges if e.b == boxes[name].id and g.kind(e) == "flow"]
        assert len(into) == 1 and g.nodes[into[0].a].rows == ["AccumulateGrad"]
    loss.backward()
    boxes = Parsed(jg.viz.draw(loss, params=params).source).tensors()
    for name, p in params.items():
        grad = _row(boxes[name], "grad")
        assert grad != "None" and grad.startswith("[")


def test_shared_subgraphs_are_drawn_once():
    x = jg.tensor([[1.0, -2.0], [3.0, 4.0]], requires_grad=True)
    h = jg.relu(x @ x)          # x used twice by one node
    out = h * h + h             # h's subgraph reached three times
    for _ in range(40):         # 2**40 paths: a walk that does not share nodes never ends
        out = out * 0.5 + out
    g = Parsed(jg.viz.draw(out.sum(), params=dict(x=x, h=h), show_saved=False).source)
    fns = _unique_fns(out.sum())
    names = collections.Counter(n.rows[0] for n in g.ops())
    assert names["ReluBackward0"] == 1 and names["AccumulateGrad"] == 1
    assert sum(names.values()) == len(fns)
    relu = next(n.id for n in g.ops() if n.rows == ["ReluBackward0"])
    into_relu = collections.Counter(g.nodes[e.a].rows[0] for e in g.edges
                                    if e.b == relu and g.kind(e) == "flow")
    assert into_relu == {"MulBackward0": 2, "AddBackward0": 1}
    mm = next(n.id for n in g.ops() if n.rows == ["MmBackward0"])
    acc = next(n.id for n in g.ops() if n.rows == ["AccumulateGrad"])
    assert sum(1 for e in g.edges if (e.a, e.b) == (mm, acc)) == 2
    assert sorted(g.tensors()) == ["h", "output", "x"] and len(g.boxes()) == 3


def test_retain_grad_non_leaf_shows_its_grad():
    x = jg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    k = x + 1                   # not retained: its .grad stays None, read without warning
    out = (h ** 2).sum() + (k * 3).sum()
    out.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = Parsed(jg.viz.draw(out, params=dict(x=x, h=h, k=k), show_saved=False).source)
    boxes = g.tensors()
    assert _row(boxes["h"], "grad").replace(" ", "") == "[4.,8.,12.]"
    assert _row(boxes["h"], "grad_fn") == "MulBackward0"
    assert _row(boxes["h"], "is_leaf") == "False"
    assert _row(boxes["k"], "grad") == "None"
    assert _row(boxes["x"], "grad").replace(" ", "") == "[11.,19.,27.]"  # 8x + 3
    # h's box points at its own grad_fn, the node PowBackward0 flows into
    (link,) = [e for e in g.edges if e.a == boxes["h"].id]
    assert g.kind(link) == "grad_fn" and g.nodes[link.b].rows == ["MulBackward0"]
    assert any(g.nodes[e.a].rows == ["PowBackward0"] and e.b == link.b for e in g.edges)
    assert "dashed" in boxes["h"].attrs["style"] and "penwidth" not in boxes["h"].attrs


def test_lazy_and_eager_draw_the_same_graph():
    sources = {}
    for mode in ("eager", "lazy"):
        jg.set_mode(mode)
        model, loss = _mlp_loss()
        before = jg.viz.draw(loss, params=dict(model.named_parameters())).source
        loss.backward()
        after = jg.viz.draw(loss, params=dict(model.named_parameters())).source
        sources[mode] = (before, after)
    assert sources["eager"] == sources["lazy"]
    assert sources["eager"][0] != sources["eager"][1]  # grads appeared, saved tensors left


def test_lazy_training_step_from_a_cached_program_draws(lazy_mode):
    jg.manual_seed(0)
    w = jg.randn(3, requires_grad=True)
    x = jg.randn(8, 3)
    for _ in range(3):          # later steps replay a cached Program
        loss = ((x * w).sum(1) ** 2).mean()
        loss.backward()
        with jg.no_grad():
            w -= 0.01 * w.grad
        grad = w.grad.clone()
        w.grad = None
    loss = ((x * w).sum(1) ** 2).mean()
    loss.backward()
    boxes = Parsed(jg.viz.draw(loss, params=dict(w=w)).source).tensors()
    shown = [float(v) for v in _row(boxes["w"], "grad").strip("[]").split(",")]
    assert np.allclose(shown, w.grad.numpy(), rtol=1e-3, atol=1e-4)
    assert not np.allclose(w.grad.numpy(), grad.numpy())  # a new step's grad, not the old
    assert _row(boxes["output"], "grad_fn") == "MeanBackward0"


def test_leaf_root_and_bad_arguments():
    x = jg.tensor([1.0, 2.0], requires_grad=True)
    g = Parsed(jg.viz.draw(x).source)
    assert list(g.tensors()) == ["output"] and g.edges == [] and g.ops() == []
    g = Parsed(jg.viz.draw([x * 2, x + 1], params=[("x", x)], show_saved=False).source)
    assert sorted(n.rows[0] for n in g.ops()) == ["AccumulateGrad", "AddBackward0",
                                                  "MulBackward0"]
    assert sorted(b.rows[0] for b in g.boxes()) == ["output [2]", "output [2]", "x [2]"]
    with pytest.raises(TypeError, match="expects tensors"):
        jg.viz.draw(3.0)
    with pytest.raises(ValueError, match="rankdir"):
        jg.viz.draw(x, rankdir="UP")
    with pytest.raises(ValueError, match="format must be one of"):
        jg.viz.draw(x).pipe("jpeg-xl")
    assert "rankdir=BT" in jg.viz.draw(x, rankdir="BT").source


# --- rendering ---------------------------------------------------------------------

@needs_dot
def test_render_svg_and_png(tmp_path):
    x, y, z = _seed_graph()
    z.backward(retain_graph=True)
    g = jg.viz.draw(z, params=dict(x=x, y=y, z=z))
    path = g.render(tmp_path / "seed.svg")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.strip() for t in root.itertext() if t.strip())
    for label in ("MulBackward0", "AccumulateGrad", "requires_grad:", "is_leaf:", "grad_fn"):
        assert label in text
    texts = [t.strip() for t in root.itertext()]
    assert {"x", "y", "z", "2.0", "1.0"} <= set(texts)
    png = tmp_path / "seed.png"
    assert g.render(png) == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g.render(tmp_path / "forced", format="png").read_bytes()[:4] == b"\x89PNG"
    svg = g._repr_svg_()
    assert "<svg" in svg and "MulBackward0" in svg


def test_without_graphviz_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot program anywhere on PATH
    x, y, z = _seed_graph()
    g = jg.viz.draw(z, params=dict(x=x, y=y, z=z))
    for fmt in ("svg", "png"):
        with pytest.raises(viz.GraphvizNotFoundError, match="apt-get install graphviz") as e:
            g.render(tmp_path / f"g.{fmt}")
        assert fmt.upper() in str(e.value) and "dot" in str(e.value)
        assert not (tmp_path / f"g.{fmt}").exists()
    assert issubclass(viz.GraphvizNotFoundError, RuntimeError)
    assert g._repr_svg_() is None
    assert "apt-get install graphviz" in repr(g)
    # the DOT text needs no Graphviz
    assert g.save(tmp_path / "g.dot").read_text() == g.source == str(g)
    assert "MulBackward0" in g.source


def test_without_graphviz_via_shutil_which(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    x, y, z = _seed_graph()
    with pytest.raises(RuntimeError, match="Graphviz"):
        jg.viz.draw(z).pipe("svg")


# --- python -m jitgrad.examples.seed --draw DIR ----------------------------------

def _run_seed_draw(directory):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert seed.main(["--draw", str(directory)]) == 0
    return out.getvalue()


def test_seed_draw_writes_the_seed_graphs(tmp_path):
    mode = jg.get_mode()
    printed = _run_seed_draw(tmp_path)
    ext = "svg" if HAVE_DOT else "dot"
    stems = ["graph", "graph_after_backward", "backward", "vector_jacobian", "regression_loss"]
    assert sorted(os.listdir(tmp_path)) == sorted(f"{s}.{ext}" for s in stems)
    assert printed.splitlines()[-len(stems):] == [f"wrote {tmp_path / f'{s}.{ext}'}"
                                                  for s in stems]
    assert "seed example" not in printed  # the drawing replaces the demo's output
    assert jg.get_mode() == mode
    if HAVE_DOT:
        root = ET.parse(tmp_path / "graph.svg").getroot()
        texts = {t.strip() for t in root.itertext()}
        assert {"MulBackward0", "AccumulateGrad", "x", "y", "z"} <= texts
        root = ET.parse(tmp_path / "backward.svg").getroot()
        assert "PowBackward0" in {t.strip() for t in root.itertext()}
    else:
        assert "MulBackward0" in (tmp_path / "graph.dot").read_text()


def test_seed_draw_without_graphviz_writes_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    printed = _run_seed_draw(tmp_path / "pics")
    assert "apt-get install graphviz" in printed
    g = Parsed((tmp_path / "pics" / "graph.dot").read_text())
    assert sorted(g.tensors()) == ["x", "y", "z"]
    after = Parsed((tmp_path / "pics" / "graph_after_backward.dot").read_text()).tensors()
    assert _row(after["x"], "grad") == "2.0"
    vj = Parsed((tmp_path / "pics" / "vector_jacobian.dot").read_text()).tensors()
    assert _row(vj["y"], "grad").replace(" ", "") == "[0.,2.,8.]"
    reg = Parsed((tmp_path / "pics" / "regression_loss.dot").read_text()).tensors()
    assert sorted(reg) == ["b", "loss", "w", "x"]  # y is subtracted: nothing saves it
