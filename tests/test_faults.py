"""Faults a run must survive: rewards that raise or return NaN, NaN gradients, out of memory, Start/Stop races,
Ctrl-C and SIGTERM, a full or read-only disk. Each keeps what was saved before and says what happened."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grpo_app.config import Config
from grpo_app.jobs import JobBusy
from grpo_app.registry import JobRegistry
from grpo_app.runs import Run, read_status
from grpo_app.training import train

REPO = Path(__file__).resolve().parent.parent


def _reward_file(tmp_path: Path, body: str) -> str:
    """A custom reward that behaves from step 3 on as `body` says (steps 1-2 are fine, and saved)."""
    path = tmp_path / "faulty.py"
    path.write_text(
        "import torch\ncalls = [0]\n\ndef faulty(prompts, completions, **kw):\n    calls[0] += 1\n"
        "    if calls[0] <= 2:\n        return [float(i % 2) for i in range(len(completions))]\n"
        f"    {body}\n"
    )
    return f"{path}:faulty"


def _assert_saved_before_survives(run_dir: Path, steps: int) -> None:
    run = Run(run_dir)
    assert len(run.metrics()) == steps and run.has_adapter()
    Config.load(run.config_file)
    assert (run_dir / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").is_file()
    from safetensors.torch import load_file

    assert load_file(run.adapter_dir / "adapter_model.safetensors")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            "raise ValueError('the judge model timed out')",
            "The reward 'faulty' failed at step 3: ValueError: the judge",
        ),
        ("return [float('nan')] * len(completions)", "The reward 'faulty' returned nan for completion 1 at step 3"),
        ("return [1.0]", "The reward 'faulty' returned 1 scores for 4 completions at step 3"),
    ],
)
def test_a_faulty_reward_stops_the_run_and_keeps_what_was_saved(tiny_cfg, tmp_path, body, words):
    tiny_cfg.reward.functions = [_reward_file(tmp_path, body)]
    tiny_cfg.grpo.max_steps, tiny_cfg.grpo.save_steps = 6, 1
    result = train(tiny_cfg)
    assert result.status == "failed" and words in result.message, result.message
    status = read_status(result.run_dir)
    assert status["status"] == "failed" and words in status["message"] and "Traceback" in status["traceback"]
    _assert_saved_before_survives(result.run_dir, 2)


def test_nan_gradients_stop_before_the_weights_change(tiny_cfg, tmp_path):
    """Rewards of ±3e38 with unscaled advantages overflow the loss: the gradients are inf/NaN at step 3."""
    tiny_cfg.reward.functions = [
        _reward_file(tmp_path, "return [3e38 if i % 2 else -3e38 for i in range(len(completions))]")
    ]
    tiny_cfg.grpo.scale_rewards, tiny_cfg.grpo.max_steps, tiny_cfg.grpo.save_steps = "none", 6, 1
    result = train(tiny_cfg)
    assert result.status == "failed" and "gradients became NaN or inf at step 3" in result.message
    _assert_saved_before_survives(result.run_dir, 2)
    saved = (result.run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    assert saved == (result.run_dir / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").read_bytes()


def test_an_impossible_batch_is_refused_and_the_app_keeps_serving(tiny_cfg):
    registry = JobRegistry()
    g = tiny_cfg.grpo
    g.per_device_train_batch_size, g.num_generations, g.max_completion_length = 4096, 4096, 100_000
    snap = registry.start(tiny_cfg).wait(120)
    assert snap.status == "failed" and "Out of memory before it starts" in snap.message
    assert "per_device_train_batch_size" in snap.message and not Path(tiny_cfg.run.dir).exists()
    g.per_device_train_batch_size, g.num_generations, g.max_completion_length = 4, 4, 8
    assert registry.start(tiny_cfg).wait(120).status == "finished"


def test_out_of_memory_during_a_step_is_reported_with_a_hint(tiny_cfg, tmp_path):
    """A real allocation failure inside the training thread (2**62 bytes), then the next run works."""
    tiny_cfg.reward.functions = [_reward_file(tmp_path, "return torch.empty(2**62, dtype=torch.uint8).tolist()")]
    tiny_cfg.grpo.max_steps, tiny_cfg.grpo.save_steps = 5, 1
    registry = JobRegistry()
    snap = registry.start(tiny_cfg).wait(120)
    assert snap.status == "failed" and snap.message.startswith("Out of memory"), snap.message
    assert "Lower grpo.per_device_train_batch_size" in snap.message
    _assert_saved_before_survives(Path(snap.run_dir), 2)
    tiny_cfg.reward.functions, tiny_cfg.run.dir = ["length"], str(tmp_path / "next")
    assert registry.start(tiny_cfg).wait(120).status == "finished"


def test_start_and_stop_races_leave_one_job_and_a_consistent_state(tiny_cfg, tmp_path):
    registry = JobRegistry()
    # Stop while the model loads, twice: the run ends stopped, nothing raises.
    job = registry.start(tiny_cfg)
    assert registry.stop() and registry.stop()
    snap = job.wait(120)
    assert snap.status == "stopped", snap.message
    assert not registry.stop()  # a third Stop after the end is a no-op
    # Eight pages press Start at once: one job runs, seven are told why not.
    tiny_cfg.grpo.max_steps = 200
    outcomes, barrier = [], threading.Barrier(8)

    def press(i: int) -> None:
        cfg = Config.from_dict(tiny_cfg.to_dict())
        cfg.run.dir = str(tmp_path / f"race-{i}")
        barrier.wait()
        try:
            registry.start(cfg)
            outcomes.append("started")
        except JobBusy as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=press, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("started") == 1 and all("already in progress" in o for o in outcomes if o != "started")
    assert sum(1 for p in tmp_path.glob("race-*")) <= 1
    deadline = time.time() + 120
    while registry.snapshot().step < 1 and time.time() < deadline:
        time.sleep(0.1)
    registry.stop()
    with pytest.raises(JobBusy, match="stopping"):  # Start while stopping
        registry.start(tiny_cfg)
    snap = registry.current.wait(120)
    assert snap.status == "stopped" and Run(snap.run_dir).has_adapter()
    assert read_status(Path(snap.run_dir))["status"] == "stopped"


def _cli(tiny_cfg, run_dir: Path, *extra: str) -> list[str]:
    g = tiny_cfg.grpo
    return [
        sys.executable,
        "-m",
        "grpo_app",
        "train",
        "--set",
        f"model.name={tiny_cfg.model.name}",
        f"data.path={tiny_cfg.data.path}",
        "grpo.per_device_train_batch_size=4",
        "grpo.gradient_accumulation_steps=1",
        "grpo.num_generations=4",
        f"grpo.max_completion_length={g.max_completion_length}",
        f"run.dir={run_dir}",
        *extra,
    ]


def _wait_for_steps(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while len(Run(run_dir).metrics()) < n:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "no training steps logged"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_save_before_the_cli_exits(tiny_cfg, tmp_path, signum):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        _cli(tiny_cfg, run_dir, "grpo.max_steps=100000", "grpo.save_steps=100000"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_steps(run_dir, 2, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "stopping after this step and saving" in err and "Traceback" not in err
    status = read_status(run_dir)
    assert status["status"] == "stopped"
    run = Run(run_dir)
    assert run.has_adapter() and len(run.metrics()) == status["steps"]
    assert (run_dir / "checkpoints" / f"checkpoint-{status['steps']}" / "trainer_state.json").is_file()


def test_a_second_ctrl_c_quits_at_once_and_still_saves(tiny_cfg, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        _cli(tiny_cfg, run_dir, "grpo.max_steps=100000", "grpo.save_steps=100000", "grpo.max_completion_length=64"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_steps(run_dir, 1, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    status = read_status(run_dir)
    assert status["status"] == "stopped", status
    assert Run(run_dir).has_adapter()


def _namespaces_work() -> bool:
    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0
    )


def _on_own_disk(tiny_cfg, tmp_path: Path, size: str, then: str, *settings: str) -> tuple[str, Path]:
    """Train on a real tmpfs of `size` mounted in a private mount namespace; `then` runs beside it (sh). Returns
    stderr and a copy of the run folder taken after the process ended."""
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    run_dir = disk / "run"
    cmd = " ".join(f"'{a}'" for a in _cli(tiny_cfg, run_dir, *settings))
    script = (
        f"mount -t tmpfs -o size={size} tmpfs '{disk}' || exit 99\n"
        f"{cmd} 2> '{tmp_path}/err' & pid=$!\n{then.format(run=run_dir, disk=disk)}\n"
        f"wait $pid; echo $? > '{tmp_path}/exit'; cp -r '{run_dir}' '{copy}'\n"
    )
    subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=True,
    )
    return (tmp_path / "err").read_text(), copy


needs_mounts = pytest.mark.skipif(not _namespaces_work(), reason="needs `unshare -rm` to mount a small/read-only disk")


@needs_mounts
def test_a_full_disk_fails_clearly_and_keeps_earlier_files(tiny_cfg, tmp_path):
    """A 5 MB disk: the adapter of step 1 fits (the tokenizer alone is 3.5 MB), its checkpoint does not."""
    err, run_dir = _on_own_disk(tiny_cfg, tmp_path, "5m", "", "grpo.max_steps=20", "grpo.save_steps=1")
    assert (tmp_path / "exit").read_text().strip() == "1", err
    assert "the disk is full" in err and "Traceback" not in err, err
    status = read_status(run_dir)
    assert status["status"] == "failed" and "the disk is full" in status["message"]
    run = Run(run_dir)
    Config.load(run.config_file)
    assert len(run.metrics()) == 1 and run.has_adapter()
    from safetensors.torch import load_file

    assert load_file(run.adapter_dir / "adapter_model.safetensors")
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")], "a half-written temp file is left"


@needs_mounts
def test_a_disk_turning_read_only_mid_run_fails_clearly_and_keeps_earlier_files(tiny_cfg, tmp_path):
    then = (
        "while [ \"$(cat '{run}/metrics.jsonl' 2>/dev/null | wc -l)\" -lt 3 ]; do sleep 0.2; done\n"
        "until mount -o remount,ro '{disk}'; do sleep 0.05; done"
    )
    err, run_dir = _on_own_disk(tiny_cfg, tmp_path, "64m", then, "grpo.max_steps=100000", "grpo.save_steps=2")
    assert (tmp_path / "exit").read_text().strip() == "1", err
    assert "the disk is read-only" in err and "Traceback" not in err, err
    run = Run(run_dir)
    Config.load(run.config_file)
    assert len(run.metrics()) >= 3 and run.has_adapter()
    status = json.loads(run.status_file.read_text())
    assert status["status"] == "running"  # it could not be updated; with the process gone it reads interrupted
    assert read_status(run_dir)["status"] == "interrupted"
