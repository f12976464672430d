"""Held-out quality during training and the best checkpoint (#23.2, #23.3)."""

import json

import pytest

from grpo_app.config import preset
from grpo_app.heldout import heldout_prompts
from grpo_app.runs import Run
from grpo_app.training import train


def test_a_run_scores_held_out_prompts_and_keeps_its_best_adapter(tiny_cfg):
    tiny_cfg.grpo.max_steps, tiny_cfg.run.eval_steps, tiny_cfg.run.eval_size = 3, 2, 3
    tiny_cfg.data.path = "bundled-mixed"
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    run = Run(result.run_dir)
    scored = [m for m in run.metrics() if "heldout/score" in m]
    assert [m["step"] for m in scored] == [2, 3]  # every 2 steps, and at the end
    assert {"heldout/summary_rate", "heldout/copy_rate", "heldout/length_error"} <= set(scored[0])
    best = json.loads((run.path / "best" / "best.json").read_text())
    assert best["score"] == max(m["heldout/score"] for m in scored)
    assert best["step"] == next(m["step"] for m in scored if m["heldout/score"] == best["score"])
    assert (run.path / "best" / "adapter_model.safetensors").is_file()
    assert json.loads(run.status_file.read_text())["best_step"] == best["step"]


def test_scoring_does_not_change_what_the_run_learns(tiny_cfg, tmp_path):
    """The held-out answers are greedy and the random state is put back: the same seed trains the same
    completions with and without evaluation."""
    tiny_cfg.grpo.max_steps = 2
    plain = Run(train(tiny_cfg).run_dir).completions()
    tiny_cfg.run.dir, tiny_cfg.run.eval_steps, tiny_cfg.run.eval_size = str(tmp_path / "scored"), 1, 2
    tiny_cfg.data.path, tiny_cfg.run.eval_prompts = tiny_cfg.data.path, tiny_cfg.data.path
    scored = Run(train(tiny_cfg).run_dir).completions()
    assert [r["completion"] for r in scored] == [r["completion"] for r in plain]


def test_the_guard_stops_a_run_whose_reward_rises_while_held_out_quality_falls(tiny_cfg, tmp_path):
    """A reward made to diverge from the held-out metric: it pays `sign` x step, and the held-out prompts carry
    sign -1. The training reward rises every step while the held-out score falls, so with guard 2 the run stops at
    step 3 of 20, says why, and best/ keeps step 1."""
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps({"prompt": f"Text {i}.", "sign": 1}) for i in range(8)))
    (tmp_path / "heldout.jsonl").write_text(
        "\n".join(json.dumps({"prompt": f"Other {i}.", "sign": -1}) for i in range(2))
    )
    (tmp_path / "gamed.py").write_text(
        "def gamed(prompts, completions, sign, trainer_state=None, **kw):\n"
        "    step = trainer_state.global_step + 1 if trainer_state is not None else 0\n"
        "    return [float(s * step) for s in sign]\n"
    )
    tiny_cfg.data.path, tiny_cfg.run.eval_prompts = str(tmp_path / "train.jsonl"), str(tmp_path / "heldout.jsonl")
    tiny_cfg.reward.functions, tiny_cfg.reward.weights, tiny_cfg.reward.monitor = (
        [f"{tmp_path}/gamed.py:gamed"],
        [1],
        [],
    )
    tiny_cfg.grpo.max_steps, tiny_cfg.run.eval_steps, tiny_cfg.run.guard = 20, 1, 2
    tiny_cfg.speed.fast_decode = "off"  # held-out answers from transformers' generate, not the decoding copy
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    assert result.message.startswith("Stopped by the guard at step 3: the held-out score fell below step 1's")
    metrics = Run(result.run_dir).metrics()
    assert [m["heldout/score"] for m in metrics] == [-2.0, -3.0, -4.0] and metrics[-1]["reward"] > metrics[0]["reward"]
    assert json.loads((result.run_dir / "best" / "best.json").read_text())["step"] == 1
    assert json.loads(Run(result.run_dir).status_file.read_text())["best_step"] == 1


def test_held_out_prompts_follow_the_task():
    assert len(heldout_prompts(preset("reason")).prompts) == 8  # the reason split, with its answers
    assert heldout_prompts(preset("reason")).columns["answer"][0].isdigit()
    quick = heldout_prompts(preset("quick"))
    assert len(quick.prompts) == 8 and any("TITLE:" in str(p) for p in quick.prompts)  # posts, documents, plain


def test_the_quality_chart_draws_the_held_out_score():
    from grpo_app.ui.charts import quality_figure

    rows = [{"step": s, "reward": 1.0, "rewards/summary/mean": 0.5} for s in range(1, 5)]
    rows[1]["heldout/summary_rate"], rows[3]["heldout/summary_rate"] = 0.25, 0.75
    names = {t.name: list(t.x) for t in quality_figure(rows).data}
    assert names["held-out summaries (unseen texts)"] == [2, 4]
    task = [{"step": 2, "reward": 1.0, "heldout/score": 1.5}]
    assert "held-out score (unseen prompts)" in {t.name for t in quality_figure(task).data}


def test_the_best_adapter_exports(tiny_cfg, tmp_path):
    from grpo_app.export import ExportError, export_run

    tiny_cfg.run.eval_steps, tiny_cfg.run.eval_size = 1, 2
    run_dir = train(tiny_cfg).run_dir
    folder = export_run(run_dir, out=tmp_path / "best-export", which="best")
    assert (folder / "adapter_model.safetensors").read_bytes() == (
        run_dir / "best" / "adapter_model.safetensors"
    ).read_bytes()
    tiny_cfg.run.dir, tiny_cfg.run.eval_steps = str(tmp_path / "plain"), 0
    plain = train(tiny_cfg).run_dir
    with pytest.raises(ExportError, match="no best adapter: it was trained without run.eval_steps"):
        export_run(plain, which="best")


def test_the_runs_command_compares_runs(tiny_cfg, tmp_path, capsys):
    from grpo_app.cli import main

    for name, lr in (("a", 1e-4), ("b", 1e-2)):
        tiny_cfg.run.dir, tiny_cfg.grpo.learning_rate = str(tmp_path / name), lr
        assert train(tiny_cfg).status == "finished"
    assert main(["runs", "--root", str(tmp_path), "--compare", "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "grpo.learning_rate" in out and "settings that differ: grpo.learning_rate" in out
    assert main(["runs", "--compare", str(tmp_path / "missing"), "a"]) == 2
