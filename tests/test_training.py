import json
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from grpo_app.jobs import JobBusy
from grpo_app.registry import JobRegistry
from grpo_app.runs import Run, list_runs
from grpo_app.training import Reporter, train


def test_train_writes_the_run_folder_and_changes_only_lora(tiny_cfg, tiny_model_dir):
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    run = Run(result.run_dir)
    cfg = run.config()
    assert cfg.model.device == "cpu" and cfg.grpo.optim == "adamw_torch"  # the host's choices are recorded
    metrics = run.metrics()
    assert [m["step"] for m in metrics] == [1, 2]
    for key in (
        "reward",
        "reward_std",
        "rewards/length/mean",
        "loss",
        "completions/mean_length",
        "step_time",
        "rewards/grounding/mean",
        "rewards/no_repeat/mean",
        "rewards/summary/mean",
        "memory_gb",
    ):  # watched by default
        assert key in metrics[0], key
    assert 0.1 < metrics[-1]["memory_gb"] <= json.loads(run.status_file.read_text())["peak_memory_gb"]
    for m in metrics:  # the watched metrics are logged, not optimised: the reward is the length reward alone
        assert m["reward"] == pytest.approx(m["rewards/length/mean"], rel=1e-4, abs=1e-3)
    completions = run.completions()
    assert len(completions) == 8 and {"step", "prompt", "completion", "rewards", "total"} <= set(completions[0])
    assert json.loads(run.status_file.read_text())["status"] == "finished"
    # LoRA weights moved away from their init (B starts at zero); the base model file is untouched.
    lora = load_file(run.adapter_dir / "adapter_model.safetensors")
    b = [v for k, v in lora.items() if "lora_B" in k]
    assert b and any(v.abs().sum() > 0 for v in b)
    base_before = load_file(tiny_model_dir / "model.safetensors")
    assert not any("lora" in k for k in base_before)


def test_a_run_continues_from_another_runs_adapter(tiny_cfg, tmp_path):
    """run.resume_from: a new run starts from a saved adapter (its LoRA weights, not a fresh init) and saves its
    own; the first run's adapter is left as it was."""
    first = train(tiny_cfg)
    assert first.status == "finished", first.error
    saved = first.run_dir / "adapter" / "adapter_model.safetensors"
    before = load_file(saved)
    tiny_cfg.run.dir, tiny_cfg.run.resume_from = str(tmp_path / "second"), str(first.run_dir / "adapter")
    tiny_cfg.grpo.max_steps, tiny_cfg.grpo.learning_rate = 1, 1e-9  # a step that barely moves the weights
    lines = []

    class Log(Reporter):
        def on_log(self, line):
            lines.append(line)

    second = train(tiny_cfg, Log())
    assert second.status == "finished", second.error
    assert f"Continuing from adapter {first.run_dir / 'adapter'}." in lines
    after = load_file(second.run_dir / "adapter" / "adapter_model.safetensors")
    assert after.keys() == before.keys()
    assert any(v.abs().sum() > 0 for k, v in before.items() if "lora_B" in k)  # trained: not a fresh init
    assert all(torch.allclose(after[k], before[k], atol=1e-6) for k in before)  # the first run's weights, carried
    assert all(torch.equal(load_file(saved)[k], before[k]) for k in before)  # and the first run's file untouched


def test_an_existing_run_folder_is_never_reused(tiny_cfg):
    from grpo_app.config import ConfigError

    assert train(tiny_cfg).status == "finished"
    before = Run(tiny_cfg.run.dir).metrics_file.read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_cfg)
    assert Run(tiny_cfg.run.dir).metrics_file.read_text() == before


def test_base_weights_unchanged_in_memory(tiny_cfg):
    from peft import PeftModel

    from grpo_app.models import load_model

    result = train(tiny_cfg)
    base, _, _ = load_model(tiny_cfg)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = PeftModel.from_pretrained(base, result.run_dir / "adapter")
    for k, v in tuned.get_base_model().state_dict().items():
        name = k.replace(".base_layer", "")
        if "lora" not in k and name in before:
            assert torch.equal(v, before[name]), k


def test_stop_ends_at_step_boundary_and_saves(tiny_cfg):
    tiny_cfg.grpo.max_steps = 50
    stop = threading.Event()

    class StopAfterFirst(Reporter):
        def on_progress(self, step, total):
            if step >= 1:
                stop.set()

    result = train(tiny_cfg, StopAfterFirst(), stop)
    assert result.status == "stopped"
    assert Run(result.run_dir).has_adapter()
    assert len(Run(result.run_dir).metrics()) < 50


def test_failing_reward_is_captured(tiny_cfg, tmp_path):
    f = tmp_path / "bad_reward.py"
    f.write_text("def explode(prompts, completions, **kw):\n    raise RuntimeError('reward blew up')\n")
    tiny_cfg.reward.functions = [f"{f}:explode"]
    result = train(tiny_cfg)
    assert result.status == "failed" and "reward blew up" in result.message
    assert "Traceback" in result.error
    status = json.loads(Run(result.run_dir).status_file.read_text())
    assert status["status"] == "failed" and "reward blew up" in status["message"]


def test_job_lifecycle_and_single_job(tiny_cfg, tmp_path):
    registry = JobRegistry()
    tiny_cfg.grpo.max_steps = 60
    job = registry.start(tiny_cfg)
    with pytest.raises(JobBusy, match="already in progress"):
        registry.start(tiny_cfg)
    deadline = time.time() + 120
    while registry.snapshot().step < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert registry.snapshot().status == "training"
    assert registry.stop()
    snap = job.wait(120)
    assert snap.status == "stopped" and snap.step < 60
    assert snap.metrics and snap.completions and snap.eta is None or snap.eta >= 0
    assert any("[stopped]" in line for line in snap.log)
    assert registry.latest_adapter() is not None
    assert list_runs(tmp_path)[0].status == "stopped"


def test_job_reports_config_errors(tiny_cfg):
    tiny_cfg.model.name = str(tiny_cfg.run.dir) + "-missing/model"
    job = JobRegistry().start(tiny_cfg)
    snap = job.wait(120)
    assert snap.status == "failed" and "model" in snap.message.lower()


def test_dataset_columns_reach_the_rewards(tiny_cfg, tmp_path):
    """A custom reward in TRL's convention gets each row's other columns by name (#21.1): `answer` arrives."""
    rows = [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]
    (tmp_path / "sums.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "check.py").write_text(
        "SEEN = []\n"
        "def check(prompts, completions, answer=None, **kw):\n"
        "    assert answer is not None and len(answer) == len(completions), 'answer did not arrive'\n"
        "    for p, a in zip(prompts, answer):\n"
        "        assert str(int(p.split('What is ')[1].split()[0]) * 2) == a, (p, a)\n"
        "    return [float(a in c) for c, a in zip(completions, answer)]\n"
    )
    tiny_cfg.data.path, tiny_cfg.data.chat_format = str(tmp_path / "sums.jsonl"), False
    tiny_cfg.reward.functions, tiny_cfg.reward.weights = ["length", f"{tmp_path / 'check.py'}:check"], [1.0, 1.0]
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    metrics = Run(result.run_dir).metrics()
    assert "rewards/check/mean" in metrics[0]
