"""A run killed with SIGKILL shows as interrupted and resumes from its last checkpoint exactly once per step."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grpo_app.config import ConfigError
from grpo_app.runs import Run, last_checkpoint, list_runs, read_status
from grpo_app.training import Reporter, train

REPO = Path(__file__).resolve().parent.parent
SLOW_REWARD = (
    "import time\n\n\ndef slow(prompts, completions, **kw):\n    time.sleep(0.4)\n    return [0.0] * len(completions)\n"
)


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [sys.executable, "-m", "grpo_app", *args], env


@pytest.fixture
def resumable(tiny_cfg, tmp_path):
    """Twelve steps, a checkpoint every two, and a reward slow enough to kill the run between checkpoints."""
    (tmp_path / "slow.py").write_text(SLOW_REWARD)
    tiny_cfg.reward.functions = ["length", f"{tmp_path / 'slow.py'}:slow"]
    tiny_cfg.grpo.max_steps, tiny_cfg.grpo.save_steps, tiny_cfg.grpo.save_total_limit = 12, 2, 2
    tiny_cfg.grpo.learning_rate = 1e-3
    return tiny_cfg


def test_kill_9_then_resume_continues_the_same_run(resumable, tmp_path):
    cfg = resumable
    run_dir = Path(cfg.run.dir)
    config = tmp_path / "run.yaml"
    cfg.save(config)
    cmd, env = _cli("train", "--config", str(config))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file():
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed on purpose
    proc.wait(30)
    status = read_status(run_dir)
    assert status["status"] == "interrupted", status
    assert next(r for r in list_runs(run_dir.parent) if r.path == run_dir).status == "interrupted"
    before = [m["step"] for m in Run(run_dir).metrics()]
    assert 4 <= len(before) < 12 and last_checkpoint(run_dir).name.startswith("checkpoint-")

    cmd, env = _cli("train", "--resume", str(run_dir))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed at step" in r.stderr
    metrics = Run(run_dir).metrics()
    assert [m["step"] for m in metrics] == list(range(1, 13))  # every step once: none lost, none twice
    assert sorted({c["step"] for c in Run(run_dir).completions()}) == list(range(1, 13))
    assert all(sum(c["step"] == s for c in Run(run_dir).completions()) == 4 for s in range(1, 13))
    assert read_status(run_dir)["status"] == "finished"
    assert len(list((run_dir / "checkpoints").glob("checkpoint-*"))) <= 2  # save_total_limit bounds the disk
    assert all(b["elapsed"] <= a["elapsed"] for b, a in zip(metrics, metrics[1:], strict=False))  # clock goes on

    # then the recipe's last steps: export --merge, and the merged folder generates through a plain pipeline
    from transformers import pipeline

    cmd, env = _cli("export", str(run_dir), "--merge")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = pipeline("text-generation", model=str(run_dir / "merged"))("Summarize: the tap drips.", max_new_tokens=4)
    assert out[0]["generated_text"].startswith("Summarize: the tap drips.")

    # the learning-rate schedule went on where it was: the same as an uninterrupted run of the same config
    cfg.run.dir = str(tmp_path / "reference")
    reference = train(cfg)
    assert [m["learning_rate"] for m in metrics] == pytest.approx(
        [m["learning_rate"] for m in Run(reference.run_dir).metrics()]
    )


def test_resume_refuses_what_it_cannot_continue(tiny_cfg, tmp_path):
    tiny_cfg.grpo.save_steps = 0
    result = train(tiny_cfg)
    with pytest.raises(ConfigError, match="has finished"):
        train(Run(result.run_dir).config(), resume=True)
    (result.run_dir / "status.json").write_text('{"status": "stopped"}')
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(Run(result.run_dir).config(), resume=True)
    tiny_cfg.run.dir = str(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="not a run folder"):
        train(tiny_cfg, resume=True)


def test_resumed_run_exports_merged_and_loads_with_pipeline(resumable):
    """The path a user takes after a crash: resume, export --merge, generate with a plain pipeline."""
    from transformers import pipeline

    cfg = resumable
    cfg.grpo.max_steps = 4
    cfg.reward.functions = ["length"]
    run_dir = Path(cfg.run.dir)
    stop = threading.Event()
    stop_after_two = train(cfg, _StopAt(2, stop), stop)
    assert stop_after_two.status == "stopped" and read_status(run_dir)["status"] == "stopped"
    assert last_checkpoint(run_dir).name == "checkpoint-2"  # Stop saved a checkpoint where it stopped
    cmd, env = _cli("train", "--resume", str(run_dir))
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
    assert [m["step"] for m in Run(run_dir).metrics()] == [1, 2, 3, 4]
    cmd, env = _cli("export", str(run_dir), "--merge")
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "merged model" in r.stdout, r.stderr[-2000:]
    out = pipeline("text-generation", model=str(run_dir / "merged"))("Summarize: the tap drips.", max_new_tokens=4)
    assert out[0]["generated_text"].startswith("Summarize: the tap drips.")


class _StopAt(Reporter):
    """Presses Stop when the run reaches a step, as a user would from the Train tab."""

    def __init__(self, step: int, stop: threading.Event):
        self.step, self.stop = step, stop

    def on_progress(self, step: int, total: int) -> None:
        if step >= self.step:
            self.stop.set()
