"""jitgrad keeps its compiled kernels in a folder of its own without moving Numba's cache
for anyone else: a user's ``@njit(cache=True)`` function caches where Numba puts it."""
import os
import subprocess
import sys
import textwrap


def test_importing_jitgrad_leaves_numbas_cache_setting_alone(tmp_path):
    user_module = tmp_path / "user_code.py"
    user_module.write_text(textwrap.dedent("""
        from numba import njit

        @njit(cache=True)
        def twice(x):
            return 2 * x
    """))
    script = textwrap.dedent(f"""
        import os, sys
        import numba
        before = numba.config.CACHE_DIR
        import jitgrad as jg
        from jitgrad.kernels.cpu import config
        assert numba.config.CACHE_DIR == before, (before, numba.config.CACHE_DIR)
        jg.tensor([1.0, 2.0]).exp().sum().item()  # jitgrad's kernels: loaded or compiled
        assert any(os.scandir(config.CACHE_DIR)), "jitgrad's kernels are not in its folder"
        sys.path.insert(0, {str(tmp_path)!r})
        import user_code
        assert user_code.twice(21) == 42
        print(config.CACHE_DIR)
    """)
    # (no NUMBA_CACHE_DIR: Numba would put the user's cache there too; jitgrad's folder is
    # then the usual one, warm from the rest of the suite)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ours = done.stdout.strip()
    # the user's function was cached by Numba's own rules (beside its file), not in ours
    cached = [p.name for p in (tmp_path / "__pycache__").iterdir()]
    assert any(name.startswith("user_code.twice") for name in cached), cached
    assert not any("user_code" in f for _, _, files in os.walk(ours) for f in files)
