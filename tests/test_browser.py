"""The app in a real browser (Debian's headless Chromium driven by Playwright): train live, stop, compare."""

import json
import time
from pathlib import Path

import httpx
import pytest
from browser_helpers import (
    CANARY,
    MIXED_ROWS,
    QUALITY_POINTS,
    REWARD_POINTS,
    REWARD_XS,
    WATCH_SIDES,
    set_field,
    table_rows,
    tiny_settings,
    wait,
)

from grpo_app.config import Config, preset

pytestmark = pytest.mark.browser


def test_train_live_then_stop(app_url, browser, tiny_model_dir):
    url, runs = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    set_field(page, "cfg-model-name", tiny_model_dir)
    set_field(page, "cfg-grpo-max_steps", 400)
    set_field(page, "cfg-grpo-per_device_train_batch_size", 4)
    set_field(page, "cfg-grpo-num_generations", 4)
    set_field(page, "cfg-grpo-max_completion_length", 8)
    page.click("#start-btn")
    wait(lambda: page.evaluate(REWARD_POINTS) >= 2)
    first = page.evaluate(REWARD_POINTS)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    wait(lambda: page.evaluate(REWARD_POINTS) > first + 1)  # still growing: the page follows the job...
    # ...through the feed, with no Gradio event while the run's stage holds (#24: ~18 ms of server CPU each)
    assert [u for u in requests if "studio/live" in u] and not [u for u in requests if "queue/join" in u], requests
    wait(lambda: table_rows(page, "completions-table") >= 4, timeout=30)
    assert "step" in page.locator("#train-progress").inner_text()
    # the watched quality metrics are charted live beside the reward, one point per step
    quality = wait(lambda: (q := page.evaluate(QUALITY_POINTS)).get("summaries", 0) >= first and q)
    assert {"summaries", "grounding", "non-repeated 3-grams", "reward (trend)"} <= set(quality)
    assert "summary?" in page.locator("#completions-table").inner_text()  # each sample marked pass / fail
    # a second tab sees the same job and its history
    other = browser.new_page()
    other.goto(url)
    wait(lambda: other.evaluate(REWARD_POINTS) >= first)
    page.click("#start-btn")  # a second start while running is refused
    page.get_by_text("already in progress").first.wait_for(timeout=30_000)
    page.click("#stop-btn")
    page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)
    run_dirs = [p for p in runs.iterdir() if (p / "config.yaml").is_file()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "adapter" / "adapter_model.safetensors").is_file()
    steps = len((run_dirs[0] / "metrics.jsonl").read_text().splitlines())
    assert 2 <= steps < 400
    # the last step's charts follow the status line by a refresh (each part of the view is its own event)
    wait(lambda: page.evaluate(REWARD_POINTS) == steps)
    page.reload()
    wait(lambda: page.evaluate(REWARD_POINTS) == steps)  # the full history survives a reload
    # a saved run reopens from "Past runs" in a fresh page (no job in that view's history needed)
    fresh = browser.new_page(viewport={"width": 1400, "height": 1200})
    fresh.goto(url)
    fresh.get_by_text("Past runs").click()
    fresh.locator("#past-run input").click()
    fresh.get_by_role("option").first.click()
    fresh.click("#open-run-btn")
    wait(lambda: fresh.evaluate(REWARD_POINTS) == steps)
    assert "Stopped" in fresh.locator("#train-status").inner_text()
    # Resume goes on from the checkpoint Stop saved: the same run, more steps, the history kept
    assert (run_dirs[0] / "checkpoints" / f"checkpoint-{steps}").is_dir()
    fresh.click("#resume-run-btn")
    wait(lambda: fresh.evaluate(REWARD_POINTS) > steps + 1)
    assert "resumed at step" in fresh.locator("#train-status").inner_text()
    xs = fresh.evaluate(REWARD_XS)  # the steps before the resume stay on the live chart (#19.3)
    assert xs[: steps + 2] == list(range(1, steps + 3)), xs
    fresh.click("#stop-btn")
    fresh.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)
    metrics = (run_dirs[0] / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["step"] for m in metrics] == list(range(1, len(metrics) + 1))
    # export and push from the page: offline here, so one sentence; the token never comes back to the page
    fresh.get_by_text("Export / push to the Hub").click()
    set_field(fresh, "push-repo", "me/my-model")
    set_field(fresh, "push-token", CANARY)
    fresh.click("#push-btn")
    fresh.locator("#export-result").get_by_text("Offline").wait_for(timeout=120_000)
    assert fresh.locator("#push-token input").input_value() == ""
    assert CANARY not in fresh.content()
    for path in runs.rglob("*"):  # nor the server log, the run folders or the export
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    assert (run_dirs[0] / "merged" / "README.md").is_file()


def test_a_page_with_nothing_new_asks_the_pulse_and_no_refresh(app_url, browser):
    """An open page costs the server a plain GET every 1.5 s, not a Gradio event (#24, twenty viewers): it runs the
    live view's refresh only when the pulse's key moves (ui/pulse.py; the run's steps reaching the page while it
    trains is `test_train_live_then_stop`)."""
    url, _ = app_url
    pulse = httpx.get(f"{url}/studio/pulse", timeout=10).json()
    assert set(pulse) == {"key", "moment", "stage", "active", "elapsed"} and not pulse["active"]
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    # the first pulse's answer has been acted on (its feed or refresh sent) and the page shows the run's stage: on a
    # busy machine that answer can take longer than a beat, so the quiet window starts from it, not from a clock
    page.wait_for_function(
        "(stage) => window.gsPulse && window.gsPulse.key !== null"
        " && document.getElementById('gs-stage')?.textContent.trim() === stage",
        arg=pulse["stage"],
        timeout=60_000,
    )
    page.wait_for_timeout(2_000)  # the feed or refresh that answer started has landed
    before = len(requests)
    page.wait_for_timeout(6_000)  # (Playwright delivers a page's events while it is called, not in time.sleep)
    quiet = requests[before:]
    assert sum("studio/pulse" in u for u in quiet) >= 3, quiet
    assert not [u for u in quiet if "queue/join" in u or "studio/live" in u], quiet
    assert page.locator("#gs-stage").text_content().strip() == pulse["stage"]  # what its last refresh showed
    # the feed, as the page applies it: the view's values while the run is at the stage the page shows; nothing when
    # it is not (a feed that lands after the run moved on must not undo the refresh that showed it)
    fed = page.evaluate("() => window.gsFeed(11)")
    assert len(fed) == 11 and isinstance(fed[0], str) and fed[0].startswith("**"), fed[:2]
    page.evaluate("() => { document.getElementById('gs-stage').textContent = 'another stage'; }")
    assert page.evaluate("() => window.gsFeed(11)") == [{"__type__": "update"}] * 11


def test_compare_streams_both_sides_and_batch(app_url, browser):
    url, _ = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    wait(lambda: page.locator("#adapter-choice input").input_value() != "")
    page.get_by_text("Generation settings").click()
    set_field(page, "gen-max-new", 160)
    page.evaluate(WATCH_SIDES)
    page.click("#generate-btn")
    wait(lambda: page.locator("#tuned-stats").get_by_text("tok/s").count() > 0, timeout=120)
    wait(
        lambda: (
            page.evaluate("() => window.sides.length")
            == (time.sleep(1.5) or page.evaluate("() => window.sides.length"))
        ),
        timeout=120,
    )  # settled: nothing changed for 1.5 s
    seen = page.evaluate("() => window.sides")  # (base chars, tuned chars) at every frame that changed them
    final_base = len(page.locator("#base-output textarea").input_value())
    assert final_base and page.locator("#tuned-output textarea").input_value().strip()
    assert any(0 < base < final_base and tuned > 0 for base, tuned in seen), seen  # both grow at once
    assert "length" in page.locator("#base-stats").inner_text()
    assert not page.locator("#batch-table").is_visible()  # nothing half-built before the first batch
    assert not page.locator("#batch-quality").is_visible()
    set_field(page, "batch-n", 4)
    page.click("#batch-btn")
    page.locator("#batch-summary").get_by_text("answers that are summaries").wait_for(timeout=180_000)
    wait(lambda: table_rows(page, "batch-table") == 4, timeout=30)
    assert "distance from the ideal length" in page.locator("#batch-summary").inner_text()
    wait(lambda: page.locator("#batch-quality .js-plotly-plot").count() == 1, timeout=30)
    assert "tuned summary?" in page.locator("#batch-table").inner_text()


def _edit_cell(page, table_id: str, row: int, col: int, value) -> None:
    """Type into a cell of an editable Gradio Dataframe, as a user does: double-click, type, Enter; again, as a user
    would, when the double-click did not open the cell's editor (seen on loaded CI machines, right after an edit:
    the keys then went to a cell that was only selected)."""
    cell = page.locator(f"#{table_id} [data-testid=cell-{row}-{col}]")
    editor = cell.locator("textarea[aria-label='Edit cell']")
    for _attempt in range(4):
        page.keyboard.press("Escape")  # no editor left open by an earlier edit
        cell.scroll_into_view_if_needed()
        cell.dblclick()
        try:
            wait(lambda: editor.count() == 1 and editor.evaluate("e => e === document.activeElement"), timeout=5)
        except AssertionError:
            continue  # the editor did not open: double-click again
        page.keyboard.press("Control+A")
        page.keyboard.type(str(value))
        page.keyboard.press("Enter")
        try:
            wait(lambda: cell.inner_text().split("\n")[0].strip() == str(value), timeout=10)  # the text, not ⋮
            return
        except AssertionError:
            pass
    raise AssertionError(f"cell {row},{col} of #{table_id} shows {cell.inner_text()!r}, not {value!r}")


def _run_config(runs: Path, before: set) -> Config:
    new = wait(lambda: [p for p in set(runs.iterdir()) - before if (p / "config.yaml").is_file()])
    return Config.load(new[0] / "config.yaml")


def test_each_reward_keeps_its_weight(app_url, browser, tiny_model_dir):
    """Unticking and re-ticking a reward once moved the weights onto other rewards (#19.1): in the rewards table
    each weight sits on its reward's row, and the run trains with exactly those."""
    url, runs = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    tiny_settings(page, tiny_model_dir)
    rows = page.locator("#cfg-reward-table [data-testid^=cell-][data-testid$='-0']").all_inner_texts()
    row = {name.strip(): i for i, name in enumerate(rows)}
    _edit_cell(page, "cfg-reward-table", row["grounding"], 1, 0)  # "untick" grounding
    _edit_cell(page, "cfg-reward-table", row["grounding"], 1, 50)  # and tick it again
    _edit_cell(page, "cfg-reward-table", row["no_repeat"], 1, 25)
    before = set(runs.iterdir())
    page.click("#start-btn")
    cfg = _run_config(runs, before)
    page.click("#stop-btn")
    page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)
    weights = dict(zip(cfg.reward.functions, cfg.reward.weights, strict=True))
    quick = preset("quick").reward
    expected = {**dict(zip(quick.functions, map(float, quick.weights), strict=True)), "grounding": 50.0}
    assert weights == {**expected, "no_repeat": 25.0}, weights
    assert cfg.reward.monitor == []  # every watched reward is trained: none is left watched-only


def test_a_start_in_the_first_second_starts_the_run(app_url, browser):
    """The first click, right after the page appears, once went nowhere (#19.2): the form is filled from the first
    paint, so it starts the preset's run (the real offline model), which then stops cleanly."""
    url, runs = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    before = set(runs.iterdir())
    page.goto(url)
    page.locator("#start-btn").click()  # as soon as it can be clicked: nothing else has loaded yet
    cfg = _run_config(runs, before)
    quick = preset("quick")
    assert cfg.model.name == "default" and cfg.grpo.max_steps == quick.grpo.max_steps
    assert dict(zip(cfg.reward.functions, cfg.reward.weights, strict=True)) == dict(
        zip(quick.reward.functions, quick.reward.weights, strict=True)
    )
    wait(lambda: any(word in page.locator("#train-status").inner_text() for word in ("Loading", "Training")))
    page.click("#stop-btn")
    page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=300_000)


def test_on_a_phone_the_status_is_on_the_first_screen(app_url, browser, tiny_model_dir):
    """At 390x844 the status and the progress bar were ~3,100 px below Start (#19.13)."""
    url, _ = app_url
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    for box in ("#start-btn", "#train-status"):
        where = page.locator(box).bounding_box()
        assert where and where["y"] + where["height"] <= 844, (box, where)
    tiny_settings(page, tiny_model_dir)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.click("#start-btn")
    page.locator("#train-status").get_by_text("Training").wait_for(timeout=120_000)
    where = page.locator("#train-progress").bounding_box()
    assert where and where["y"] + where["height"] <= 844, where
    page.click("#stop-btn")
    page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)


def test_two_pages_press_start_and_stop_at_once(app_url, browser, tiny_model_dir):
    """One job, both pages agree, and the server log holds no exception."""
    url, runs = app_url
    before = {p for p in runs.iterdir() if p.is_dir()}
    pages = [browser.new_page(viewport={"width": 1400, "height": 1200}) for _ in range(2)]
    for page in pages:
        page.goto(url)
        page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
        tiny_settings(page, tiny_model_dir)
    for page in pages:  # both clicks are in flight together
        page.locator("#start-btn").dispatch_event("click")
    wait(lambda: {p for p in runs.iterdir() if p.is_dir()} - before)
    training = "() => document.querySelector('#train-progress .gs-progress')?.dataset.status"
    wait(lambda: all(p.evaluate(training) == "training" for p in pages))  # both pages follow the one job
    time.sleep(2)
    assert len({p for p in runs.iterdir() if p.is_dir()} - before) == 1
    for page in pages:
        page.locator("#stop-btn").dispatch_event("click")
    pages[0].locator("#stop-btn").dispatch_event("click")
    for page in pages:
        page.locator("#train-status").get_by_text("Stopped").wait_for(timeout=120_000)
    log = (runs / "app.log").read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_a_reward_written_in_the_page_trains_a_run(app_url, browser, tiny_model_dir):
    """The reward editor (#21.3): code typed into the page, checked on Save (a broken one is one sentence), then
    trained with: the run's config names it and its metrics chart it."""
    url, runs = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_text(MIXED_ROWS).wait_for(timeout=60_000)
    tiny_settings(page, tiny_model_dir, steps=2)
    page.get_by_text("Write a reward").click()
    set_field(page, "reward-name", "brief")
    editor = page.locator("#reward-code .cm-content")
    for code, expected in (
        ("def brief(prompts, completions):\n    return [0.0] * len(completions)\n", "must accept **kwargs"),
        (
            "def brief(prompts, completions, **kwargs):\n"
            "    texts = [c[-1]['content'] if isinstance(c, list) else c for c in completions]\n"
            "    return [float(len(t) < 30) for t in texts]\n",
            "Saved and checked",
        ),
    ):
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(code)  # as pasted: no auto-indent
        page.click("#reward-save-btn")
        page.locator("#reward-result").get_by_text(expected).wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    wait(lambda: "brief.py:brief" in page.locator("#cfg-reward-table").inner_text(), timeout=30)
    before = set(runs.iterdir())
    page.click("#start-btn")
    cfg = _run_config(runs, before)
    assert any(f.endswith("brief.py:brief") for f in cfg.reward.functions), cfg.reward.functions
    page.locator("#train-status").get_by_text("Finished").wait_for(timeout=300_000)
    metrics = [json.loads(line) for line in (Path(cfg.run.dir) / "metrics.jsonl").read_text().splitlines()]
    assert "rewards/brief/mean" in metrics[0]


def test_two_runs_with_different_learning_rates_overlaid(app_url, browser, tiny_model_dir):
    """#23.1: two finished runs picked in "Compare runs" appear on the same charts, their difference listed."""
    from grpo_app.training import train

    url, runs = app_url
    for name, lr in (("lr-small", 1e-4), ("lr-large", 1e-2)):
        cfg = Config()
        cfg.model.name, cfg.data.path, cfg.run.dir = str(tiny_model_dir), "bundled", str(runs / name)
        g = cfg.grpo
        g.per_device_train_batch_size, g.num_generations, g.max_completion_length = 4, 4, 8
        g.max_steps, g.learning_rate, g.gradient_checkpointing = 2, lr, False
        assert train(cfg).status == "finished"
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    page.get_by_text("Compare runs").click()
    pick = page.locator("#compare-runs-pick input")
    for name in ("lr-small", "lr-large"):
        pick.click()
        page.get_by_role("option", name=name).first.click()
    page.click("#compare-runs-btn")
    page.locator("#compare-runs-note").get_by_text("settings that differ").wait_for(timeout=60_000)
    assert "grpo.learning_rate" in page.locator("#compare-runs-note").inner_text()
    names = wait(
        lambda: page.evaluate(
            "() => { const d = document.querySelector('#compare-runs-plot .js-plotly-plot');"
            " return d && d.data ? [...new Set(d.data.map(t => t.name))] : null; }"
        ),
        timeout=30,
    )
    assert set(names) == {"lr-small", "lr-large"}, names
    assert "lr-large" in page.locator("#compare-runs-table").inner_text()
