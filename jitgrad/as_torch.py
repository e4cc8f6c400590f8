"""Run PyTorch code on jitgrad unchanged: ``import torch`` resolves to ``jitgrad``.

    python -m jitgrad.as_torch script.py [args...]
    python -m jitgrad.as_torch -m package.module [args...]

runs the script (or module) as ``python script.py`` would, with a finder at the
front of ``sys.meta_path`` that maps ``torch`` to ``jitgrad`` and ``torch.X.Y``
to ``jitgrad.X.Y``: ``import torch``, ``import torch.nn as nn``,
``import torch.nn.functional as F``, ``from torch import optim``,
``from torch.utils.data import DataLoader`` and ``import torch.autograd`` all
give the matching jitgrad modules (the very same module objects, so
``torch.nn is jitgrad.nn``). A ``torch`` submodule jitgrad does not have raises
``ModuleNotFoundError`` naming both the torch name and the jitgrad name looked
for.

In a test or a notebook, ``install()`` puts the finder in place and
``uninstall()`` takes it out again::

    from jitgrad import as_torch
    as_torch.install()
    try:
        import torch            # jitgrad
    finally:
        as_torch.uninstall()

While installed, any real PyTorch modules already imported are set aside from
``sys.modules`` (so ``import torch`` cannot find them there) and ``uninstall()``
puts them back, removing the aliases. Modules that bound the name ``torch``
while the finder was installed keep jitgrad.

Importing jitgrad never installs the finder; only ``install()`` and this runner do.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys

__all__ = ["install", "uninstall", "installed", "TorchToJitgrad", "main"]

TORCH = "torch"
JITGRAD = "jitgrad"


def _jitgrad_name(fullname):
    """``torch`` -> ``jitgrad``, ``torch.nn.functional`` -> ``jitgrad.nn.functional``."""
    return JITGRAD + fullname[len(TORCH):]


def _is_torch_name(name):
    return name == TORCH or name.startswith(TORCH + ".")


class _AliasLoader(importlib.abc.Loader):
    """Hands the import system the already imported jitgrad module for a torch name."""

    def __init__(self, target):
        self.target = target
        self._own_spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        # The import system writes the torch spec over ``module.__spec__``; keep
        # jitgrad's own to put back in exec_module.
        self._own_spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module):
        if self._own_spec is not None:
            module.__spec__ = self._own_spec


class TorchToJitgrad(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder resolving ``torch`` and ``torch.X.Y`` to jitgrad's modules."""

    def find_spec(self, fullname, path=None, target=None):
        if not _is_torch_name(fullname):
            return None
        name = _jitgrad_name(fullname)
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError as error:
            # A parent of ``name`` is a plain module, not a package.
            if error.name is not None and not name.startswith(error.name):
                raise
            found = None
        if found is None:
            raise ModuleNotFoundError(
                f"No module named '{fullname}' (jitgrad.as_torch resolves '{fullname}' "
                f"to '{name}', and there is no module named '{name}')", name=fullname)
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(name),
            is_package=found.submodule_search_locations is not None)

    def __repr__(self):
        return "<jitgrad.as_torch.TorchToJitgrad>"


# What install() changed, for uninstall() to undo: the finder and the real torch
# modules set aside (shared through the canonical module, see _canonical()).
_state = {"finder": None, "stashed": {}}


def _canonical():
    """This file's state, even when it runs as ``__main__`` (``python -m jitgrad.as_torch``)."""
    return sys.modules.get("jitgrad.as_torch") or sys.modules[__name__]


def installed():
    """Whether the finder is in ``sys.meta_path``."""
    finder = _canonical()._state["finder"]
    return finder is not None and finder in sys.meta_path


def install():
    """Put the finder at the front of ``sys.meta_path``; ``import torch`` then gives jitgrad.

    Real PyTorch modules already imported are moved out of ``sys.modules`` until
    ``uninstall()``. Installing twice is the same as installing once.
    """
    state = _canonical()._state
    if state["finder"] is not None and state["finder"] in sys.meta_path:
        return state["finder"]
    import jitgrad  # noqa: F401  (import it before the aliases exist)
    state["stashed"] = {name: module for name, module in sys.modules.items()
                        if _is_torch_name(name)}
    for name in state["stashed"]:
        del sys.modules[name]
    finder = TorchToJitgrad()
    sys.meta_path.insert(0, finder)
    state["finder"] = finder
    return finder


def uninstall():
    """Remove the finder and the ``torch`` aliases; put back any real PyTorch modules set aside."""
    state = _canonical()._state
    finder = state["finder"]
    if finder is not None:
        while finder in sys.meta_path:
            sys.meta_path.remove(finder)
    for name in [name for name in sys.modules if _is_torch_name(name)]:
        module = sys.modules[name]
        if getattr(module, "__name__", "").split(".")[0] == JITGRAD or module is None:
            del sys.modules[name]
    sys.modules.update(state["stashed"])
    state["finder"] = None
    state["stashed"] = {}


_USAGE = ("usage: python -m jitgrad.as_torch script.py [args...]\n"
          "       python -m jitgrad.as_torch -m module [args...]\n"
          "Runs a PyTorch script with `import torch` resolved to jitgrad.")


def main(argv=None):
    """The command line: run a script or module with the finder installed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(_USAGE, file=sys.stderr)
            return 2
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        script = argv[0]
        sys.argv = argv
        # As `python script.py` does: the script's folder comes first on sys.path.
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    # Use the importable module (not this __main__ copy), so install()/uninstall()
    # called from the script see the same state.
    from jitgrad.as_torch import main as _main
    sys.exit(_main())
