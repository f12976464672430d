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
    """pip install (into a prefix, dependencies from this environment), then `grpo-studio train` elsewhere."""
    prefix, source = tmp_path / "prefix", tmp_path / "source"  # built from a copy: the checkout gets no build/
    skip = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, source, ignore=skip)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    r = subprocess.run([*pip, "--prefix", str(prefix), "."], cwd=source, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    site = next(prefix.glob("lib/python*/site-packages"))
    assert (site / "grpo_app" / "assets" / "posts" / "train.jsonl").is_file()
    assert (site / "grpo_app" / "assets" / "reason" / "test.jsonl").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    command = [str(prefix / "bin" / "grpo-studio"), "train", "--preset", "quick", "--set", "grpo.max_steps=2"]
    r = subprocess.run([*command, "run.dir=out"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mean reward: first" in r.stdout and (elsewhere / "out" / "adapter" / "adapter_model.safetensors").is_file()
    probe = "import grpo_app, sys; print(grpo_app.__file__)"
    where = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site)), where.stdout  # the installed package, not the checkout
