"""Every script in examples/ runs here in its fast --smoke mode, so none can rot."""
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_smoke(script, tmp_path):
    proc = subprocess.run([sys.executable, str(script), "--smoke"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 77:  # convention: a required offline dataset is not installed
        pytest.skip(f"{script.name}: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_every_example_is_collected():
    assert any(p.name == "quickstart.py" for p in EXAMPLES)
