"""The README's main job, ``python -m jitgrad.examples.digits``, in its short mode."""
import subprocess
import sys

import numpy as np
import pytest

import jitgrad as jg

pytest.importorskip("sklearn")
digits = pytest.importorskip("jitgrad.examples.digits")


@pytest.fixture(scope="module")
def data():
    return digits.load_data()


def test_split_is_fixed_and_standardised(data):
    x_train, y_train, x_test, y_test = data
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert np.array_equal(digits.load_data()[3], y_test)
    assert abs(x_train.mean()) < 1e-3 and set(np.unique(y_test)) == set(range(10))


@pytest.mark.parametrize("kind, bound", [("mlp", 0.95), ("cnn", 0.90)])
def test_short_run_learns_and_checkpoint_roundtrips(tmp_path, data, kind, bound):
    # 300 steps reach >= 97% (MLP) and >= 95% (CNN) for seeds 0-5; the bounds leave margin
    result = digits.run(kind, steps=300, seed=0, out=str(tmp_path / "{model}.ckpt"),
                        show_progress=False, data=data)
    assert result["accuracy"] >= bound
    model = digits.build(kind)
    model.load_state_dict(jg.load(tmp_path / f"{kind}.ckpt"))
    assert digits.accuracy(model, digits.inputs(kind, data[2]), data[3]) == result["accuracy"]


def test_same_seed_same_result(data):
    a = digits.run("mlp", steps=40, seed=3, show_progress=False, data=data)
    b = digits.run("mlp", steps=40, seed=3, show_progress=False, data=data)
    assert a["accuracy"] == b["accuracy"]


@pytest.mark.parametrize("mode", ["eager", "lazy"])
def test_command_line(tmp_path, mode):
    out = subprocess.run(
        [sys.executable, "-m", "jitgrad.examples.digits", "--model", "mlp", "--steps", "30",
         "--seed", "1", "--out", str(tmp_path / "m.ckpt"), "--no-progress", "--mode", mode],
        capture_output=True, text=True, check=True).stdout
    assert "mlp: held-out accuracy" in out and "written and reloaded" in out
    assert (tmp_path / "m.ckpt").exists()


def test_compare_torch(data, capsys):
    pytest.importorskip("torch")
    result = digits.run("mlp", steps=30, show_progress=False, compare_torch=True, data=data)
    assert "vs PyTorch" in capsys.readouterr().out
    assert result["torch_s_per_step"] > 0 and 0 <= result["torch_accuracy"] <= 1


def test_compare_torch_without_torch(data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    digits.run("mlp", steps=12, show_progress=False, compare_torch=True, data=data)
    assert "--compare-torch skipped: PyTorch is not installed" in capsys.readouterr().out
