"""The README's training example runs and learns, and what the README says about modes holds."""
import pathlib
import re

import jitgrad as jg

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_training_example_learns(capsys):
    text = README.read_text()
    block = re.search(r"```python\n(import jitgrad as jg\nfrom jitgrad import nn\n.*?)```",
                      text, re.S)
    assert block, "the README lost its training example"
    namespace = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()
             if re.match(r"^\d+ ", line)]
    losses = [float(loss) for _, loss in lines]
    assert len(losses) == 3 and losses[-1] < 0.1 * losses[0]
    assert namespace["loss"].item() < 0.01


def test_lazy_fallbacks_are_counted():
    previous = jg.get_mode()
    jg.set_mode("lazy")
    try:
        before = jg.jit_stats()["eager_fallbacks"]
        jg.randn(3, 4).argmax(1)          # an integer result: runs eagerly
        assert jg.jit_stats()["eager_fallbacks"] == before + 1
        assert jg.jit_stats()["tier"] == "interpreter"
    finally:
        jg.set_mode(previous)


def test_readme_jit_example_replays():
    text = README.read_text()
    train = re.search(r"```python\n(import jitgrad as jg\nfrom jitgrad import nn\n.*?)```",
                      text, re.S)
    block = re.search(r"```python\n(@jg\.jit\n.*?)```", text, re.S)
    assert train and block, "the README lost its jit example"
    previous = jg.get_mode()
    jg.set_mode("lazy")
    try:
        namespace = {}
        exec(compile(train.group(1), "README.md", "exec"), namespace)
        before = jg.jit_stats()["replays"]
        exec(compile(block.group(1).replace("print(", "str("), "README.md", "exec"), namespace)
        assert jg.jit_stats()["replays"] - before == 98
        assert namespace["last"] < 0.01  # replayed steps keep training
    finally:
        jg.set_mode(previous)
