"""A real package (#22.3): `pip install .` gives `grpo_app` with its data and a `grpo-studio` command that works
from any folder; its dependencies are requirements.txt's pins."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _pins(lines) -> set[str]:
    return {re.sub(r"[-_.]+", "-", line.strip().lower()) for line in lines if line.strip() and not line.startswith("#")}


def test_pyproject_and_requirements_agree():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert _pins(declared) == _pins((REPO / "requirements.txt").read_text().splitlines())


@pytest.mark.slow
def test_installed_command_trains_from_an_unrelated_folder(tmp_path):
    """`pip install .` in a fresh venv (its dependencies, pip and setuptools already satisfied by this environment's
    packages, linked with a .pth file, so nothing is downloaded), then `grpo-studio train` from an unrelated
    folder."""
    import sysconfig

    source, venv = tmp_path / "source", tmp_path / "venv"  # built from a copy: the checkout gets no build/
    skip = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, source, ignore=skip)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # pip comes via the .pth
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-index", "."]
    r = subprocess.run(pip, cwd=source, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (site / "grpo_app" / "assets" / "posts" / "train.jsonl").is_file()
    assert (site / "grpo_app" / "assets" / "reason" / "test.jsonl").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = [
        str(venv / "bin" / "grpo-studio"),
        "train",
        "--preset",
        "quick",
        "--set",
        "grpo.max_steps=2",
        "sft.steps=1",
    ]
    r = subprocess.run([*command, "run.dir=out"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mean reward: first" in r.stdout and (elsewhere / "out" / "adapter" / "adapter_model.safetensors").is_file()
    probe = "import grpo_app; print(grpo_app.__file__)"
    where = subprocess.run([python, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site)), where.stdout  # the installed package, not the checkout
