"""The seed document's autograd examples, run with jitgrad in place of torch,
then a tiny linear regression trained by hand-written SGD.

    python -m jitgrad.examples.seed
    python -m jitgrad.examples.seed --draw DIR   # the seed's graphs as pictures instead

Each snippet is the seed's code verbatim, executed with ``torch`` bound to
``jitgrad``; the tests run the same text through PyTorch and compare output.
"""
import sys
import time

SNIPPETS = {
    "graph": '''\
# Creating the graph
x = torch.tensor(1.0, requires_grad = True)
y = torch.tensor(2.0)
z = x * y

# Displaying
for i, name in zip([x, y, z], "xyz"):
    print(f"{name}\\ndata: {i.data}\\nrequires_grad: {i.requires_grad}\\n\\
grad: {i.grad}\\ngrad_fn: {i.grad_fn}\\nis_leaf: {i.is_leaf}\\n")
''',
    "no_grad": '''\
# Creating the graph

x = torch.tensor(1.0, requires_grad = True)
# Check if tracking is enabled
print(x.requires_grad) #True
y = x * 2
print(y.requires_grad) #True

with torch.no_grad():
	# Check if tracking is enabled
	y = x * 2
	print(y.requires_grad) #False
''',
    "backward": '''\
# Creating the graph
x = torch.tensor(1.0, requires_grad = True)
z = x ** 3
z.backward() #Computes the gradient 
print(x.grad.data) #Prints '3' which is dz/dx 
''',
    "vector_jacobian": '''\
x = torch.tensor([0.0,2.0,8.0], requires_grad = True)
y = torch.tensor([5.0,1.0,7.0], requires_grad = True)
z = x * y
z.backward(torch.FloatTensor([1.0, 1.0, 1.0]))
print(x.grad, y.grad)
''',
    "implicit_grad_error": '''\
x = torch.tensor([0.0,2.0,8.0], requires_grad = True)
y = torch.tensor([5.0,1.0,7.0], requires_grad = True)
z = x * y
try:
    z.backward()
except RuntimeError as e:
    print(f"RuntimeError: {e}")
''',
}


def run_snippet(name, torch_module):
    """Execute one snippet with ``torch`` bound to ``torch_module``."""
    exec(compile(SNIPPETS[name], f"<seed:{name}>", "exec"), {"torch": torch_module})


def regression(jg, steps=200, lr=0.1):
    """Fit y = 3x - 2 + noise with a weight and a bias updated by hand, printing the loss."""
    jg.manual_seed(0)
    x = jg.rand(64, 1)
    y = 3 * x - 2 + 0.05 * jg.randn(64, 1)
    w = jg.zeros(1, requires_grad=True)
    b = jg.zeros(1, requires_grad=True)
    for step in range(steps + 1):
        loss = ((x * w + b - y) ** 2).mean()
        loss.backward()
        with jg.no_grad():
            w -= lr * w.grad
            b -= lr * b.grad
        w.grad = None
        b.grad = None
        if step % 40 == 0:
            print(f"step {step:4d}  loss {loss.item():.5f}")
    print(f"fit: w = {w.item():.3f} (true 3), b = {b.item():.3f} (true -2)")
    return loss.item(), w.item(), b.item()


# --- pictures of the graphs (--draw DIR) -----------------------------------------

def _snippet_namespace(name, torch_module):
    """The variables a snippet leaves behind, its printing and warnings swallowed."""
    import contextlib
    import io
    import warnings
    namespace = {"torch": torch_module}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(SNIPPETS[name], f"<seed:{name}>", "exec"), namespace)
    return namespace


def draw(directory, jg=None):
    """Write the seed's graphs into ``directory`` as SVG (DOT text when Graphviz's ``dot``
    is not installed); returns the paths written."""
    import os
    import shutil
    if jg is None:
        import jitgrad as jg
    os.makedirs(directory, exist_ok=True)
    ext = "svg" if shutil.which("dot") else "dot"
    written = []

    def write(stem, root, **named):
        path = os.path.join(directory, f"{stem}.{ext}")
        jg.viz.draw(root, params=named).render(path, format=ext)
        written.append(path)

    ns = _snippet_namespace("graph", jg)  # z = x * y, as the seed's figure draws it
    x, y, z = ns["x"], ns["y"], ns["z"]
    write("graph", z, x=x, y=y, z=z)
    z.backward(retain_graph=True)  # the same graph after backward: x.grad is filled
    write("graph_after_backward", z, x=x, y=y, z=z)
    ns = _snippet_namespace("backward", jg)  # z = x ** 3, after z.backward()
    write("backward", ns["z"], x=ns["x"], z=ns["z"])
    ns = _snippet_namespace("vector_jacobian", jg)  # z = x * y, after z.backward(v)
    write("vector_jacobian", ns["z"], x=ns["x"], y=ns["y"], z=ns["z"])
    jg.manual_seed(0)  # the regression's loss, as regression() builds it, before backward
    x = jg.rand(64, 1)
    y = 3 * x - 2 + 0.05 * jg.randn(64, 1)
    w = jg.zeros(1, requires_grad=True)
    b = jg.zeros(1, requires_grad=True)
    loss = ((x * w + b - y) ** 2).mean()
    write("regression_loss", loss, x=x, y=y, w=w, b=b, loss=loss)
    if ext == "dot":
        print("Graphviz's dot program is not installed (apt-get install graphviz): "
              "wrote DOT text instead of SVG")
    for path in written:
        print(f"wrote {path}")
    return written


def main(argv=()):
    args = list(argv)
    if args:
        import argparse
        parser = argparse.ArgumentParser(prog="python -m jitgrad.examples.seed")
        parser.add_argument("--draw", metavar="DIR", required=True,
                            help="write the seed's graphs as pictures into DIR (SVG; DOT "
                                 "text when Graphviz is missing) instead of running the demo")
        draw(parser.parse_args(args).draw)
        return 0
    start = time.perf_counter()
    import jitgrad
    for name in SNIPPETS:
        print(f"--- seed example: {name}")
        run_snippet(name, jitgrad)
    print("--- linear regression with hand-written SGD")
    regression(jitgrad)
    print(f"done in {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
