"""Check jitgrad's layering rules over its source, without importing it.

    python tools/check_layers.py          # exit status 1 and one line per breach

Rules (ARCHITECTURE.md says why):

1. A module imports only from its own layer or the layers below it (``LAYERS``), at the
   top of the file or inside a function alike.
2. No module assigns another module's globals (``other_module.name = ...``).
3. No file is longer than ``MAX_FILE_LINES``; no function longer than
   ``MAX_FUNCTION_LINES``, except those in ``LONG_FUNCTIONS``.
"""
import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jitgrad"
KERNELS = ROOT / "kernels"

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80

# Module (a dotted name under jitgrad, or a prefix ending in ".") -> layer; the first
# match in this order wins. Data flows from low to high: kernels know nothing of tensors,
# the runtime nothing of tensors, ops or the recorder, and so on up to the public package.
LAYERS = [
    ("jitgrad.kernels.", 0),
    ("jitgrad.core.", 1),
    ("jitgrad.dtypes", 1),
    ("jitgrad.runtime.", 2),
    ("jitgrad.tensor", 4),
    ("jitgrad._tensor_str", 4),
    ("jitgrad.random", 4),
    ("jitgrad.autograd.graph", 5),
    ("jitgrad.autograd.grad_mode", 5),
    ("jitgrad.autograd.anomaly_mode", 5),
    ("jitgrad.lazy.", 6),
    ("jitgrad.ops.", 7),
    ("jitgrad.ops", 7),
    ("jitgrad.autograd.", 8),
    ("jitgrad._methods", 9),
    ("jitgrad.jit", 10),
    ("jitgrad.nn.", 11),
    ("jitgrad.optim.", 11),
    ("jitgrad.serialization", 11),
    ("jitgrad.utils.", 11),
    ("jitgrad.cuda", 11),
    ("jitgrad.backends.", 11),
    ("jitgrad.backends", 11),
    ("jitgrad.as_torch", 12),
    ("jitgrad.examples.", 12),
    ("jitgrad.viz", 12),
    ("jitgrad", 12),
]

# Functions allowed past MAX_FUNCTION_LINES, each with the reason it is one function.
LONG_FUNCTIONS = {
    # the interpreter is a switch over instruction rows: one case per opcode
    "kernels/cpu/interpreter.py:interpret",
    # the recorder's hot path: splitting it adds a call per recorded op
    "jitgrad/lazy/recorder.py:record",
    "jitgrad/lazy/recorder.py:binary_lane",
    # still to split: the engine's pass mixes hooks, grad() captures and the cached-step
    # shortcut (ARCHITECTURE.md, "still to do"); L-BFGS follows PyTorch's code line for line
    "jitgrad/autograd/engine.py:run",
    "jitgrad/optim/lbfgs.py:_strong_wolfe",
    "jitgrad/optim/lbfgs.py:_step",
}


def layer_of(module):
    for prefix, layer in LAYERS:
        if module == prefix.rstrip(".") or (prefix.endswith(".") and module.startswith(prefix)):
            return layer
    return None


def module_name(path):
    if path.is_relative_to(KERNELS):
        parts = ("jitgrad", "kernels") + path.relative_to(KERNELS).with_suffix("").parts
    else:
        parts = ("jitgrad",) + path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree, module, is_package):
    """(line, imported module) for every jitgrad import in ``tree``, names resolved."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("jitgrad"):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("jitgrad"):
                continue
            for alias in node.names:  # ``from .pkg import x``: x may be a module itself
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if is_module(sub) else target


def is_module(dotted):
    """Whether ``dotted`` (under jitgrad) names a module or package file."""
    parts = dotted.split(".")[1:]
    if parts[:1] == ["kernels"]:
        path = KERNELS.joinpath(*parts[1:])
    else:
        path = PACKAGE.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def module_aliases(tree, module, is_package):
    """Local names bound to jitgrad modules by imports (``from . import tensor as _t``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                         if alias.name.startswith("jitgrad"))
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            anchor = base[:len(base) - node.level + 1] + ([node.module] if node.module else [])
            for alias in node.names:
                if is_module(".".join(anchor + [alias.name])):
                    names.add(alias.asname or alias.name)
    return names


def check_file(path, problems):
    text = path.read_text()
    tree = ast.parse(text)
    rel = path.relative_to(ROOT).as_posix()
    module = module_name(path)
    is_package = path.name == "__init__.py"
    layer = layer_of(module)
    n_lines = len(text.splitlines())
    if n_lines > MAX_FILE_LINES:
        problems.append(f"{rel}: {n_lines} lines (limit {MAX_FILE_LINES})")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_FUNCTIONS:
                problems.append(f"{rel}:{node.lineno}: function {node.name} is {length} lines "
                                f"(limit {MAX_FUNCTION_LINES})")
    if layer is None:
        problems.append(f"{rel}: module {module} has no layer in tools/check_layers.py")
        return
    for line, target in sorted(set(imported_modules(tree, module, is_package))):
        other = layer_of(target)
        if other is not None and other > layer:
            problems.append(f"{rel}:{line}: {module} (layer {layer}) imports {target} "
                            f"(layer {other})")
    aliases = module_aliases(tree, module, is_package)
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            for t in ast.walk(target):
                if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                        and t.value.id in aliases and isinstance(t.ctx, ast.Store)):
                    problems.append(f"{rel}:{node.lineno}: assigns {t.value.id}.{t.attr}, "
                                    f"another module's global")


def main():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")) + sorted(KERNELS.rglob("*.py")):
        check_file(path, problems)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
