"""The Train and Compare tabs' handlers, called as Gradio calls them (dicts keyed by component): what a newcomer
found wrong in the browser (issue #19), each checked against the real engine and a tiny model."""

from __future__ import annotations

import json

import gradio as gr
import pandas as pd
import pytest

from grpo_app.access import Policy
from grpo_app.config import Config, preset
from grpo_app.jobs import JobSnapshot, eta
from grpo_app.runs import Run
from grpo_app.training import train
from grpo_app.ui import charts, create_ui, live
from grpo_app.ui.forms import REWARD_TABLE, apply_reward_rows, config_to_values, form_to_config, reward_rows
from grpo_app.ui.pulse import pulse


@pytest.fixture
def app(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    demo = create_ui(str(root), Policy(runs_root=root))
    return demo, demo.train, root


def _data(tab, cfg: Config) -> dict:
    """The form filled with `cfg`, as the Start button hands it over."""
    v = tab.view
    return {v.visitor: "me", **{v.fields[k]: value for k, value in config_to_values(cfg).items()}}


def test_each_weight_stays_with_its_reward():
    """Unticking and re-ticking a reward once moved the weights onto other rewards (#19.1): the table keeps each
    weight on its reward's row, whatever order rows are edited or listed in."""
    cfg = preset("quick")
    rows = reward_rows(cfg)
    weights = dict(zip(cfg.reward.functions, cfg.reward.weights, strict=True))
    assert {r[0]: r[1] for r in rows if r[1]} == weights
    off = [[name, 0.0 if name == "grounding" else w, watch] for name, w, watch in rows]  # untick grounding
    again = [[name, weights["grounding"] if name == "grounding" else w, watch] for name, w, watch in off]
    for table in (again, list(reversed(again))):
        out = Config()
        apply_reward_rows(out, pd.DataFrame(table, columns=["reward", "weight", "watch"]))
        assert dict(zip(out.reward.functions, out.reward.weights, strict=True)) == weights
    apply_reward_rows(cfg, off)
    assert "grounding" not in cfg.reward.functions and cfg.reward.weights == [weights[f] for f in cfg.reward.functions]
    custom = [["length", 1, False], ["my_rewards.py:brevity", 2.5, False], ["summary", 0, True]]
    apply_reward_rows(cfg, custom)
    assert (cfg.reward.functions, cfg.reward.weights, cfg.reward.monitor) == (
        ["length", "my_rewards.py:brevity"],
        [1.0, 2.5],
        ["summary"],
    )
    assert ["my_rewards.py:brevity", 2.5, False] in reward_rows(cfg)


def test_the_form_is_filled_before_any_click(app):
    """A Start in the first second after the page loads once sent an empty form (#19.2): the widgets now hold the
    preset's values from the start, so the first click starts the run the page shows."""
    demo, tab, _ = app
    shown = {k: c.value for k, c in tab.view.fields.items()}
    assert form_to_config(shown).to_dict() == form_to_config(config_to_values(preset("quick"))).to_dict()


def _wait_for(predicate, timeout=120):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_resume_keeps_the_steps_before_it_and_one_clock(app, tiny_cfg):
    """Stop at step 2, Resume: the live view holds steps 1 to 4, and elapsed is the same live, after a reload and
    after Open (#19.3); the clock stops with the run."""
    import threading
    import time

    from grpo_app.training import Reporter

    demo, tab, root = app
    tiny_cfg.run.dir = str(root / "resumed")
    tiny_cfg.grpo.save_steps, tiny_cfg.grpo.max_steps = 1, 4
    stop = threading.Event()

    class StopAtTwo(Reporter):
        def on_progress(self, step, total):
            if step >= 2:
                stop.set()

    assert train(tiny_cfg, StopAtTwo(), stop).status == "stopped"
    v = tab.view
    out = tab.resume_run({v.visitor: "me", v.past: str(root / "resumed")})
    assert "Resuming" in out[v.status]
    snap = demo.registry.current.wait(120)
    assert snap.status == "finished" and [m["step"] for m in snap.metrics] == [1, 2, 3, 4]
    reward = tab.refresh({v.seen: (None, -1, -1)})[v.plots["reward"]]
    traces = json.loads(reward.plot)["data"]
    assert next(t for t in traces if t["name"] == "reward (mean)")["x"] == [1, 2, 3, 4]
    assert tab.refresh({v.seen: (None, -1, -1)})[v.plots["reward"]] is reward  # another page: drawn once for all
    status = json.loads((root / "resumed" / "status.json").read_text())
    first = demo.registry.snapshot().elapsed
    time.sleep(1.2)
    assert demo.registry.snapshot().elapsed == first  # stopped with the run
    assert abs(first - status["elapsed"]) < 1.0  # live (and a reload) and the run folder agree
    assert live.run_snapshot(Run(root / "resumed")).elapsed == status["elapsed"]  # and so does Open
    assert status["elapsed"] >= snap.metrics[-1]["elapsed"] >= snap.metrics[0]["elapsed"]


def test_a_refresh_sends_each_part_once_and_the_form_behind_its_marker(app, tiny_cfg):
    """A page's refresh sends the status line, progress, charts and samples with news, and a marker for the run's
    settings, which follow through the marker's own event; a refresh with nothing new sends the status line only
    (#24: Gradio builds a component for every output a reply leaves out, ~35 ms with the form among them)."""
    demo, tab, root = app
    v = tab.view
    tiny_cfg.run.root, tiny_cfg.run.dir = str(root), str(root / "ticked")
    before = pulse(demo.registry)
    job = demo.registry.start(tiny_cfg)
    rows = len(job.wait(120).metrics)
    _wait_for(lambda: tab.feed.drawn("charts") == ("charts", id(job), rows))  # drawn before anyone asked
    after = pulse(demo.registry)  # what every open page asks each 1.5 s before it asks for a refresh
    assert after["key"] != before["key"] and after["moment"] != before["moment"] and not after["active"]
    assert after["elapsed"] == live.clock(job.snapshot().elapsed)
    assert pulse(demo.registry) == after  # a run that has ended: nothing moves, no page refreshes
    first = tab.tick({v.seen: (None, -1, -1)})
    inline = {*v.parts["charts"], *v.parts["samples"]}
    assert set(first) == {v.seen, v.stage, v.status, v.progress, *inline, v.pending["run"]}  # all news, a new page
    assert first[v.stage] == after["stage"] and after["stage"].startswith(f"{id(job)}-0-")  # what its pulse compares
    assert set(v.pending) == {"run"}
    reward = first[v.plots["reward"]]
    assert reward.type == "plotly" and '"reward (mean)"' in reward.plot  # serialised once, sent as is
    assert len(reward.plot) < 12_000  # the charts' slim template, not plotly_white's 7 KB a figure
    settings = tab.deliver("run")({v.pending["run"]: first[v.pending["run"]]})
    assert v.past in settings and v.fields["model.name"] not in settings  # an ended run leaves the form alone
    again = tab.tick({v.seen: first[v.seen]})
    assert set(again) == {v.seen, v.stage, v.status, v.progress} and again[v.seen] == gr.skip()  # nothing new


def test_the_feed_is_the_live_view_built_once_for_every_page(app, tiny_cfg):
    """Within a run's stage a page brings its view from the feed, one JSON body per version of the run's state for
    every page, whose values are what the Gradio refresh sends, in the order of the feed event's outputs; a part
    carries a key the page compares so that an unchanged one is left alone (#24)."""
    demo, tab, root = app
    v, feed = tab.view, tab.feed
    idle = json.loads(feed.body())
    assert idle["stage"] == "none" and "Idle" in idle["head"][0] and "charts" not in idle  # no run: the status line
    tiny_cfg.run.root, tiny_cfg.run.dir = str(root), str(root / "fed")
    job = demo.registry.start(tiny_cfg)
    job.wait(120)
    body = feed.body()
    assert feed.ready() is body and feed.body() is body  # built once, served as is to every page
    p = json.loads(body)
    assert p["stage"] == pulse(demo.registry)["stage"]
    assert len(p["head"]) + sum(p["sizes"].values()) == len(feed.outputs) == 2 + 6 + 3
    assert [len(p["charts"]), len(p["samples"])] == [p["sizes"]["charts"], p["sizes"]["samples"]]
    tick = tab.tick({v.seen: (None, -1, -1)})
    assert p["head"] == [tick[v.status], tick[v.progress]] and "Finished" in p["head"][0]
    reward = p["charts"][list(v.plots).index("reward")]
    assert reward == tick[v.plots["reward"]].model_dump() and '"reward (mean)"' in reward["plot"]
    table = p["samples"][v.parts["samples"].index(v.completions)]
    assert table == tick[v.completions] and "completion" in table["headers"] and table["data"]
    job.on_log("one more line")  # news for the samples only: the charts keep their key, so a page keeps them
    assert feed.ready() is None
    again = json.loads(feed.body())
    assert again["keys"]["charts"] == p["keys"]["charts"] and again["keys"]["samples"] != p["keys"]["samples"]
    assert again["samples"][v.parts["samples"].index(v.log)].endswith("one more line")


def test_the_running_runs_settings_fill_the_form(app, tiny_cfg):
    """While a run is active, a page shows its settings (#19.6), with a note; the note goes when it ends."""
    demo, tab, root = app
    v = tab.view
    tiny_cfg.run.root, tiny_cfg.run.dir, tiny_cfg.grpo.max_steps = str(root), "", 100_000
    job = demo.registry.start(tiny_cfg)  # as another page would
    checking = tab.refresh({v.seen: (None, -1, -1)})  # while it checks, the page holds off (status line only)
    if not job.snapshot().run_dir:
        assert checking[v.seen][0] is None and v.form_note not in checking
    _wait_for(lambda: job.snapshot().status == "training")
    out = tab.refresh({v.seen: checking[v.seen]})
    assert "settings of the run in progress" in out[v.form_note]
    assert out[v.fields["grpo.max_steps"]] == 100_000 and out[v.fields["model.name"]] == tiny_cfg.model.name
    assert v.fields["grpo.max_steps"] not in tab.refresh({v.seen: out[v.seen]})  # sent once, not every tick
    demo.registry.stop()
    job.wait(120)
    assert tab.refresh({v.seen: out[v.seen]})[v.form_note] == ""


def test_a_refused_start_keeps_the_last_runs_dashboard(app, tiny_cfg):
    """A bad regex once said 'Failed — error: unterminated character set' and blanked the charts (#19.8)."""
    demo, tab, root = app
    tiny_cfg.run.dir = str(root / "good")
    tiny_cfg.run.root = str(root)
    demo.registry.start(tiny_cfg).wait(120)
    v = tab.view
    seen = tab.refresh({v.seen: (None, -1, -1)})[v.seen]
    bad = Config.from_dict(tiny_cfg.to_dict())
    bad.reward.functions, bad.reward.weights, bad.reward.regex = ["one_sentence"], [], "[a-"
    out = tab.start_run(_data(tab, bad))
    assert out[v.status].startswith("**❌ Not started**") and "reward.regex" in out[v.status]
    assert "position" in out[v.status] and "Failed" not in out[v.status]
    assert tab.refresh({v.seen: seen}) == {v.seen: seen}  # nothing changed: the last run's charts stay
    missing = Config.from_dict(tiny_cfg.to_dict())
    missing.data.path = str(root / "nowhere.jsonl")  # refused in the job's own checks, not the form's
    tab.start_run(_data(tab, missing))
    demo.registry.current.wait(60)
    after = tab.refresh({v.seen: seen})
    assert "Not started" in after[v.status] and "Dataset file not found" in after[v.status]
    assert v.plots["reward"] not in after and v.completions not in after
    # a part flagged before that start, delivered after it: nothing to send, and never an empty reply (Gradio
    # refuses one: the server log had a traceback per page)
    late = tab.deliver("run")({v.pending["run"]: ((None, -1, -1), seen)})
    assert list(late.values()) == [gr.skip()]


def test_rename_renames_the_status_too(app, tiny_cfg):
    """After a rename the status line and status.json named the old folder (#19.9)."""
    demo, tab, root = app
    tiny_cfg.run.dir, tiny_cfg.run.root = str(root / "old-name"), str(root)
    demo.registry.start(tiny_cfg).wait(120)
    note, _ = tab.manage["rename"](str(root / "old-name"), "new-name")
    assert "new-name" in note
    status = json.loads((root / "new-name" / "status.json").read_text())
    assert "old-name" not in status["message"] and "new-name" in status["message"]
    line = tab.refresh({tab.view.seen: (None, -1, -1)})[tab.view.status]
    assert "new-name" in line and "old-name" not in line


def test_a_refused_dataset_leaves_no_stale_preview(app, tmp_path):
    """The preview kept an empty grid headed '1 2 3' after a file was refused (#19.10)."""
    demo, tab, _ = app
    f = tab.view.fields
    ok = tab.show_data({f["data.path"]: "bundled", f["data.split"]: "train", f["data.prompt_column"]: "auto"})
    assert len(ok[tab.view.data_preview]) == 5
    (tmp_path / "empty.jsonl").write_text("")
    bad = tab.show_data(
        {f["data.path"]: str(tmp_path / "empty.jsonl"), f["data.split"]: "train", f["data.prompt_column"]: "auto"}
    )
    assert bad[tab.view.data_info].startswith("❌") and bad[tab.view.data_preview].empty
    assert bad[tab.view.data_preview].columns.empty


def test_an_upload_keeps_its_name(app, tmp_path):
    """An uploaded file showed as /tmp/gradio/<hash>/posts.csv (#19.14): it is kept as <runs>/uploads/posts.csv."""
    demo, tab, root = app
    source = tmp_path / "gradio-tmp" / "abc123" / "posts.csv"
    source.parent.mkdir(parents=True)
    source.write_text("prompt\nMy cat sleeps all day.\n")
    path = tab.upload_into("data.path")({tab.view.uploads["data.path"]: str(source)})[tab.view.fields["data.path"]]
    assert path == str(root / "uploads" / "posts.csv") and open(path).read() == source.read_text()
    other = tmp_path / "gradio-tmp" / "def456" / "posts.csv"  # another file of that name, for the warm-up
    other.parent.mkdir()
    other.write_text("prompt,reference\nMy dog barks.,A dog barks.\n")
    extra = tab.upload_into("sft.extra_data")({tab.view.uploads["sft.extra_data"]: str(other)})
    assert extra[tab.view.fields["sft.extra_data"]] == str(root / "uploads" / "posts-2.csv")


def test_stop_with_nothing_running_says_so(app):
    demo, tab, _ = app
    out = tab.stop_run({tab.view.visitor: "me"})  # and a toast: "Nothing is running"
    assert list(out) == [tab.view.status] and not isinstance(out[tab.view.status], str)


def test_compare_offers_the_last_finished_run(app, tiny_cfg):
    """The Compare tab picked the newest run, an accidental stopped one, over the last finished one (#19.14)."""
    demo, tab, root = app
    tiny_cfg.run.root = str(root)
    for name in ("finished-run", "stray-run"):
        tiny_cfg.run.dir = str(root / name)
        assert train(Config.from_dict(tiny_cfg.to_dict())).status == "finished"
    status = root / "stray-run" / "status.json"
    status.write_text(status.read_text().replace('"finished"', '"stopped"'))
    choice, _ = demo.compare["refresh_runs"](None)
    assert choice["value"].endswith("finished-run/adapter")


def test_batch_with_zero_prompts_takes_them_all(app, tiny_cfg):
    """Prompts = 0 ran 20 prompts without saying so (#19.4): 0 is all, a negative number is refused."""
    demo, tab, root = app
    tiny_cfg.run.dir = str(root / "r")
    adapter = str(train(tiny_cfg).run_dir / "adapter")
    gen = [4, 0.5, 0.1, 1.0, 0, False]
    md, *_rest = demo.compare["run_batch"](adapter, "", "", False, "documents", 0, None, *gen)
    assert "| 12 documents |" in md
    with pytest.raises(Exception, match="0 \\(all of them\\) or more"):
        demo.compare["run_batch"](adapter, "", "", False, "documents", -1, None, *gen)


def test_captions_ticks_eta_and_plurals():
    """Mid-step captions, duplicate ticks, an ETA that counted warm-up, '1 steps' (#19.11)."""
    s = JobSnapshot(
        status="training",
        step=1,
        total=60,
        completions_step=2,
        completions=[{"prompt": "p", "completion": "c", "rewards": {}, "total": 0.0}],
    )
    assert live.completions_caption(s) == ("**Step 2 (in progress)**: 1 completion sampled for 1 prompt, best first.")
    rows = [{"step": i, "reward": float(i), "loss": 0.1} for i in (1, 2)]
    for fig in charts.all_figures(rows):
        assert fig.layout.xaxis.dtick == 1
    assert eta([30.0], 59) == 30.0 * 59 and eta([30.0, 6.0, 6.5], 57) == 6.5 * 57  # warm-up step left out
    assert eta([], 60) is None and eta([5.0], 0) == 0.0


def test_the_preview_says_which_reward_reads_which_column(app, tmp_path):
    """Every column beside the prompt reaches the rewards by name (#21.1); the preview says which one reads it."""
    demo, tab, _ = app
    f = tab.view.fields
    (tmp_path / "sums.jsonl").write_text('{"prompt": "What is 2 plus 2?", "answer": "4", "source": "book"}\n')
    (tmp_path / "check.py").write_text(
        "def check(prompts, completions, answer, **kw):\n    return [0.0] * len(completions)\n"
    )
    table = [["length", 1.0, False], [f"{tmp_path / 'check.py'}:check", 1.0, False]]
    data = {f["data.path"]: str(tmp_path / "sums.jsonl"), f["data.split"]: "train", f["data.prompt_column"]: "auto"}
    info = tab.show_data({**data, f[REWARD_TABLE]: table})[tab.view.data_info]
    assert "answer → check" in info and "source (no reward reads it)" in info


def test_the_page_lists_each_reward_with_what_it_reads(app):
    """The catalogue in the page (#21.2): each reward's row says what it scores and which settings it reads."""
    demo, _, _ = app
    shown = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "reward-catalogue"]
    assert len(shown) == 1
    assert "| `length` |" in shown[0].value and "`reward.ideal_length`" in shown[0].value
    assert "| `json` |" in shown[0].value and "`reward.json_schema`" in shown[0].value


def test_the_reward_bench_in_the_page(app, tiny_cfg, tmp_path):
    """Test the rewards (#21.4): real samples from the form's model beside the probes, the report kept; a reward
    that cannot load is one sentence."""
    demo, tab, root = app
    out = tab.view.buttons["bench_out"]
    text = tab.test_rewards(_data(tab, tiny_cfg))[out]
    assert "4 prompts × 4 samples" in text and "probe: copying the title" in text
    assert len(list((root / "reward-bench").glob("*.json"))) == 1
    tiny_cfg.reward.functions, tiny_cfg.reward.weights = ["length", f"{tmp_path}/missing.py:f"], [1.0, 1.0]
    bad = tab.test_rewards(_data(tab, tiny_cfg))[out]
    assert bad.startswith("❌ Could not load reward function") and "Traceback" not in bad


def test_a_reward_written_in_the_page_is_checked_then_offered(app, tiny_cfg):
    """The reward editor (#21.3): Save checks the code in its own process on a real prompt and its columns; a
    broken reward is one sentence, a working one a new row of the rewards table."""
    demo, tab, root = app
    b, data = tab.view.buttons, _data(tab, tiny_cfg)
    cases = {
        "def short(prompts, completions, **kw):\n    return [float(len(c) < 40) for c in completions]\n": "✅",
        "def short(prompts, completions, **kw)\n    return []\n": "❌ The reward code does not parse",
        "def short(prompts, completions):\n    return [0.0] * len(completions)\n": "❌ 'short' must accept **kwargs",
        "def short(prompts, completions, **kw):\n    return [1.0]\n": "❌ 'short' returned 1 scores for 3 completions",
        "def short(prompts, completions, **kw):\n    return [float('nan')] * 3\n": "❌ 'short' returned nan",
        "def short(prompts, completions, **kw):\n    return [kw['answer']] * 3\n": "❌ 'short' failed on a sample: Key",
        "def short(prompts, completions, **kw):\n    while True:\n        pass\n": "❌ 'short' did not return within",
        "def other(prompts, completions, **kw):\n    return [0.0] * 3\n": "❌ The code has no function named 'short'",
    }
    for code, expected in cases.items():
        out = tab.save_reward({**data, b["reward_name"]: "short", b["reward_code"]: code})
        assert out[b["reward_result"]].startswith(expected), (code, out[b["reward_result"]])
        assert "Traceback" not in out[b["reward_result"]]
    out = tab.save_reward({**data, b["reward_name"]: "short", b["reward_code"]: next(iter(cases))})
    rows = out[tab.view.fields[REWARD_TABLE]]
    assert rows[-1] == [f"{root / 'rewards' / 'short.py'}:short", 1.0, False]


def test_the_group_inspector_shows_a_steps_advantages(app, tiny_cfg):
    """#23.4: for a step of a past run, each group's completions with their total, advantage and tokens."""
    demo, tab, root = app
    tiny_cfg.run.dir = str(root / "inspected")
    assert train(tiny_cfg).status == "finished"
    b = tab.view.buttons
    out = tab.inspect_groups({b["inspect_step"]: 1, tab.view.past: str(root / "inspected")})
    assert out[b["inspect_note"]].startswith("**Step 1** of `inspected`: ")
    frame = out[b["inspect_table"]].data
    assert len(frame) == 4 and {"group", "completion", "total", "advantage", "tokens", "cut off"} <= set(frame)
    latest = tab.inspect_groups({b["inspect_step"]: 0, tab.view.past: str(root / "inspected")})
    assert latest[b["inspect_note"]].startswith("**Step 2**")
    nothing = tab.inspect_groups({b["inspect_step"]: 0, tab.view.past: None})
    assert nothing[b["inspect_note"]] == "❌ Choose a run first (Past runs)."


def test_two_runs_overlaid_with_what_differs(app, tiny_cfg):
    """#23.1: two runs that differ in learning rate, overlaid step by step; the table names what differs."""
    demo, tab, root = app
    for name, lr in (("slow", 1e-4), ("fast", 1e-2)):
        tiny_cfg.run.dir, tiny_cfg.grpo.learning_rate = str(root / name), lr
        assert train(tiny_cfg).status == "finished"
    b = tab.view.buttons
    out = tab.compare_runs({b["compare_pick"]: [str(root / "slow"), str(root / "fast")]})
    assert out[b["compare_note"]] == "**2 runs** · settings that differ: `grpo.learning_rate`"
    frame = out[b["compare_table"]]
    assert list(frame["run"]) == ["slow", "fast"] and list(frame["grpo.learning_rate"]) == [1e-4, 1e-2]
    assert list(frame["steps"]) == [2, 2] and frame["reward (last 5)"].notna().all()
    traces = [t for t in out[b["compare_plot"]].data if t.name in ("slow", "fast")]
    assert {t.name for t in traces} == {"slow", "fast"} and all(list(t.x) == [1, 2] for t in traces if len(t.x))
    assert "Pick two runs" in tab.compare_runs({b["compare_pick"]: [str(root / "slow")]})[b["compare_note"]]
