"""The pure UI layer: widget values -> Config, metrics -> figures, snapshot -> text."""

import pytest
import torch

from grpo_app.config import Config, ConfigError, preset
from grpo_app.jobs import JobSnapshot
from grpo_app.models import slow_host_note
from grpo_app.ui import charts, live
from grpo_app.ui.forms import FORM_KEYS, cli_command, config_to_form, form_to_config


def test_form_round_trip_and_gradio_number_floats():
    cfg = preset("quick")
    values = dict(zip(FORM_KEYS, config_to_form(cfg), strict=True))
    values["grpo.max_steps"] = 12.0  # gr.Number hands back floats
    values["reward.weights"] = ""
    again = form_to_config(values)
    assert again.grpo.max_steps == 12 and isinstance(again.grpo.max_steps, int)
    assert again.data.instruction == cfg.data.instruction and again.reward.weights == []
    values["reward.functions"] = ["length", "on_topic"]
    values["reward.weights"] = "1, 0.5"
    assert form_to_config(values).reward.weights == [1.0, 0.5]


def test_form_rejects_bad_values_with_a_message():
    values = dict(zip(FORM_KEYS, config_to_form(preset("quick")), strict=True))
    values["grpo.num_generations"] = 3
    with pytest.raises(ConfigError, match="divisible"):
        form_to_config(values)


def test_cli_command_reproduces_the_config():
    from grpo_app.config import load_config, parse_set

    cfg = preset("quick")
    cfg.data.instruction = "Say it in one line."
    cmd = cli_command(cfg)
    assert cmd.startswith("python -m grpo_app train --set ")
    import shlex

    pairs = shlex.split(cmd)[5:]
    expected = {**cfg.to_dict(), "run": {**cfg.run.__dict__, "dir": ""}}  # held-out scoring included, not the folder
    assert load_config(overrides=parse_set(pairs)) == Config.from_dict(expected)


def _rows(n):
    return [
        {
            "step": i + 1,
            "reward": -100 + i,
            "reward_std": 5.0,
            "rewards/length/mean": -100 + i,
            "rewards/one_sentence/mean": 0.5,
            "rewards/no_repeat/mean": 0.0,
            "rewards/summary/mean": 0.5,
            "loss": 0.1,
            "kl": 0.01,
            "completions/mean_length": 30,
            "completions/min_length": 10,
            "completions/max_length": 40,
            "completions/clipped_ratio": 0.2,
            "entropy": 2.0,
            "learning_rate": 1e-4,
            "frac_reward_zero_std": 0.0,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [0, 1, 2000])
def test_figures_read_well_with_0_1_and_2000_points(n):
    reward, loss, length, quality, health = charts.all_figures(_rows(n))
    main = next(t for t in reward.data if t.name == "reward (mean)")
    assert len(main.x) == n
    assert main.mode == ("lines" if n > charts.MARKERS_UNTIL else "lines+markers")
    assert any(t.name == "trend" for t in reward.data) == (n > 10)
    if n:
        assert {t.name for t in reward.data} >= {"length", "one_sentence", "± std"}
        assert "no_repeat" not in {t.name for t in reward.data}  # watched metrics have their own chart
        assert any(t.name == "KL" for t in loss.data)
        names = {t.name: t for t in quality.data}
        assert set(names) == {"summaries", "non-repeated 3-grams", "reward (trend)"}
        assert names["summaries"].y[0] == 0.5 and names["non-repeated 3-grams"].y[0] == 1.0  # 0..1, higher better
    else:
        assert reward.layout.annotations[0].text.startswith("waiting")


def test_loss_figure_hides_kl_when_absent():
    rows = [{k: v for k, v in r.items() if k != "kl"} for r in _rows(3)]
    assert not any(t.name == "KL" for t in charts.loss_figure(rows).data)


def test_the_warm_up_has_its_own_loss_panel_before_and_beside_grpos():
    """A warm-up's minutes are not a blank chart: its loss (another scale than GRPO's) in a left panel, GRPO's
    loss and KL on the right once they come, and the panels' ticks apart (40 warm-up steps, 3 GRPO steps)."""
    warmup = [{"step": i, "loss": 3.0 - 0.05 * i} for i in range(1, 41)]
    during = charts.all_figures([], warmup)
    loss = during[1]
    assert [(t.name, len(t.x), t.showlegend) for t in loss.data] == [("warm-up loss", 40, None), ("loss", 0, False)]
    assert loss.layout.title.text.startswith("Warm-up") and "no GRPO step" in loss.layout.annotations[0].text
    assert during[0].layout.annotations[0].text.startswith("waiting")  # the reward waits for GRPO's first step
    after = charts.all_figures(_rows(3), warmup)[1]
    assert [t.name for t in after.data] == ["warm-up loss", "loss", "KL"] and not after.layout.annotations
    assert after.layout.xaxis.dtick is None and after.layout.xaxis2.dtick == 1
    alone = charts.all_figures(_rows(3))[1]
    assert [(t.name, t.showlegend) for t in alone.data] == [("loss", None), ("KL", None)]  # no warm-up: as before


def test_live_text():
    s = JobSnapshot(
        status="training",
        message="Training: 10 steps.",
        step=3,
        total=10,
        elapsed=65,
        eta=130,
        metrics=[{"step": 3, "reward": -12.5, "completion_tokens_per_s": 9.5}],
        completions=[
            {
                "prompt": "Summarize.\n\nMy long post",
                "completion": "Short.",
                "rewards": {"length": -44.0},
                "total": -44.0,
            }
        ],
    )
    html = live.progress_html(s)
    assert "3/10" in html and "1:05" in html and "2:10" in html and "9.5 completion tokens/s" in html
    frame = live.completions_frame(s.completions, "Summarize.").data
    assert list(frame.columns) == ["prompt", "completion", "chars", "summary?", "total", "length"]  # total in view
    assert frame.iloc[0]["prompt"] == "My long post" and frame.iloc[0]["chars"] == 6
    assert frame.iloc[0]["summary?"] == "✗ too short"
    html = live.completions_frame(s.completions, "Summarize.").to_html()
    assert live.FAIL_STYLE.split(":")[1].strip() in html  # failing rows are tinted
    assert "Training" in live.status_markdown(s)


def test_a_slow_cpu_is_said_before_start(monkeypatch):
    """Where this CPU's measured matmul speed, in the dtype its runs use, is far below the machine the docs' times
    come from, the idle status says how much longer runs take; once a run starts the status is the run's own; a
    fast CPU or a GPU hears nothing."""
    from grpo_app import models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # an AVX2 CPU in float32; a Xeon whose bf16 is slower than its float32; the AMD dev machine in bf16
    for flag, speed, said in (
        (False, {"float32": 150.0}, "2.7x"),
        (True, {"float32": 328.0, "bfloat16": 172.0}, ""),
        (True, {"float32": 190.0, "bfloat16": 400.0}, ""),
    ):
        monkeypatch.setattr(models, "cpu_supports_bf16", lambda flag=flag: flag)
        monkeypatch.setattr(models, "cpu_matmul_gflops", lambda speed=speed: speed)
        slow_host_note.cache_clear()
        idle, note = live.status_markdown(JobSnapshot()), slow_host_note()
        assert (note in idle and "150 GFLOP/s in float32" in note and said in note) if said else note == ""
        assert "GFLOP/s" not in live.status_markdown(JobSnapshot(status="training"))
    slow_host_note.cache_clear()


def test_a_saved_run_reopens_as_the_live_view_showed_it(tiny_cfg):
    from grpo_app.runs import Run
    from grpo_app.training import train

    result = train(tiny_cfg)
    s = live.run_snapshot(Run(result.run_dir))
    assert s.status == "finished" and s.step == 2 and s.total == 2 and len(s.metrics) == 2
    assert s.completions_step == 2 and len(s.completions) == 4 and not s.active
    assert len(charts.reward_figure(s.metrics).data[1].x) == 2


def test_the_pulse_moves_its_moment_with_steps_and_its_key_with_any_news():
    """A page brings its view at once on a new moment (a step's metrics, a status, another run) and lets other news
    (a step's samples as they arrive, log lines) wait a few seconds: one feed a short step, not two; its stage moves
    only where the page needs a Gradio refresh (another run, its folder known, its end) (#24)."""
    from grpo_app.jobs import TrainingJob
    from grpo_app.registry import JobRegistry

    registry = JobRegistry()
    assert registry.pulse() == ("none", "none", "none", False, 0.0)
    registry.current = job = TrainingJob(preset("quick"))
    job.on_status("training", "Training: 2 steps.")
    first = registry.pulse()
    assert first.active and first.stage == f"{id(job)}-1-none"
    job.cfg.run.dir = "/tmp/run"
    job.on_run_dir("/tmp/run")
    folder = registry.pulse().stage  # its folder: the page shows the run and its settings
    assert folder.startswith(f"{id(job)}-1-") and folder != first.stage
    key, moment = registry.pulse()[:2]
    job.on_completions(1, [{"prompt": "p", "completion": "c"}])  # the step's samples, mid-step
    job.on_log("a line")
    after = registry.pulse()
    assert after.key != key and after.moment == moment  # news, but no new moment: it can wait
    job.on_progress(1, 2)
    job.on_metrics({"step": 1, "reward": 0.5})
    assert registry.pulse().moment != moment and registry.pulse().stage == after.stage  # a step: the feed, at once
    moment = registry.pulse().moment
    job.on_status("training", "Training: 2 steps, the model loaded.")  # a new status line shows at once too
    assert registry.pulse().moment != moment
    job.on_status("finished", "Done.")
    end = registry.pulse()
    assert end.moment.startswith(f"{id(job)}-finished-1-") and not end.active
    assert end.stage == folder.replace("-1-", "-0-", 1)  # the end: the form is free, the runs list has it
    registry.renamed("/tmp/run", "/tmp/renamed")  # every page's list of runs must take the new name
    assert registry.pulse().stage not in (end.stage, folder) and registry.pulse().stage.startswith(f"{id(job)}-0-")


def test_the_apps_queue_rests_between_events(tmp_path):
    """Gradio's queue looked for events every 1 ms while it had none: 3.2% of a core for an app doing nothing, taken
    from training on two cores (#24). The app lets its idle loops sleep 20 ms; this fails if Gradio renames what it
    sets (the app would quietly poll again)."""
    from grpo_app.serve import QUEUE_POLL_S, calm_queue
    from grpo_app.ui import create_ui

    demo = create_ui(str(tmp_path))
    queue = demo.queue()._queue
    calm_queue(demo)
    assert queue.sleep_when_free == queue.progress_update_sleep_when_free == QUEUE_POLL_S
