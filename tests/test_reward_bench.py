"""The reward test bench (#21.4): lazy probes built from each prompt, scored beside real answers."""

import json
import subprocess
import sys
from pathlib import Path

from grpo_app.config import Config, preset
from grpo_app.data import build_prompts
from grpo_app.reward_bench import probes, report_markdown, score_bench

REPO = Path(__file__).resolve().parent.parent
POSTS = REPO / "assets" / "posts" / "test.jsonl"


def _held_out(cfg: Config, n: int = 3):
    """Held-out posts in the recipe's layout (a TITLE line) and, as the real samples, answers of the kind a model
    writes: the reference summary, a vaguer one, a longer one that runs on, and one that misreads the post."""
    cfg.data.path, cfg.data.max_samples = str(POSTS), n
    ds, _ = build_prompts(cfg.data)
    rows = [json.loads(line) for line in POSTS.read_text().splitlines()[:n]]
    groups = [
        [
            row["reference"],
            "The writer asks for advice about a problem in their life.",
            row["reference"].rstrip(".") + ", and they explain every detail of what happened before and after it.",
            "Someone is happy with how things went and wants to share it.",
        ]
        for row in rows
    ]
    return list(ds["prompt"]), groups


def test_a_title_copy_games_grounding_and_padding_games_length():
    """The two hacks of past rounds, found before any training: copying the title scores full grounding, and a
    word repeated to the ideal length scores full length."""
    cfg = Config()
    cfg.reward.functions, cfg.reward.weights, cfg.reward.monitor = ["grounding", "length"], [1.0, 0.01], []
    prompts, groups = _held_out(cfg)
    report = score_bench(cfg, prompts, groups)
    grounding, length = report.rewards
    assert grounding.probes["title"] == 1.0 and "title" in grounding.beaten_by
    assert length.probes["padding"] == 0.0 and "padding" in length.beaten_by
    text = "\n".join(report.warnings)
    assert (
        "On 'grounding' alone (median real sample 0.583): " in text and "copying the title (or first line) (1)" in text
    )
    assert "On 'length' alone" in text and "one word repeated to the ideal length (0)" in text
    table = report_markdown(report)
    for what in ("copying the title", "a chat pleasantry", "an empty answer", "one word repeated"):
        assert f"probe: {what}" in table


def test_the_quick_presets_rewards_hold_against_every_probe():
    """The quick preset's total (coverage, no_copy, summary...) ranks no lazy answer at or above the median real
    one; on the same answers, the recipe's length reward alone is gamed by padding."""
    cfg = preset("quick")
    prompts, groups = _held_out(cfg)
    references = {"reference": [json.loads(line)["reference"] for line in POSTS.read_text().splitlines()[:3]]}
    report = score_bench(cfg, prompts, groups, references)  # its rouge reward reads them, as in training
    assert report.total.beaten_by == {}, report.warnings
    assert report.total.probes["title"] < report.total.sample_median
    recipe = preset("quick")
    recipe.reward.functions, recipe.reward.weights, recipe.reward.monitor = ["length"], [1.0], []
    assert "padding" in score_bench(recipe, prompts, groups).total.beaten_by
    old = preset("quick")  # the quick preset of 2026-11-24, which learned to copy titles
    old.reward.functions, old.reward.weights = ["length", "grounding", "summary", "no_repeat"], [1, 50, 100, 50]
    old.reward.monitor, old.reward.ideal_length = [], 50
    warned = score_bench(old, prompts, groups)
    assert {"title", "first_sentence"} <= set(warned.total.beaten_by)
    assert warned.warnings[0].startswith("Copying the title (or first line) scores 32.3 on the total reward")


def test_probes_are_cut_from_the_prompt():
    cfg = preset("quick")
    prompts, _ = _held_out(cfg, 1)
    lazy = probes(prompts[0], cfg.data.instruction, 50, 200)
    assert lazy["title"] == "Landlord keeping $650 of my deposit for paint and an ancient carpet"
    assert lazy["instruction"].startswith("Summarize the text above") and len(lazy["padding"]) <= 50
    assert lazy["first_sentence"].startswith("I moved out of my apartment") and lazy["empty"] == ""


def test_the_rewards_command_samples_and_saves(tiny_model_dir, posts_file, tmp_path):
    """`python -m grpo_app rewards`: real samples from a model, the table, a saved report, exit 0."""
    r = subprocess.run(
        [sys.executable, "-m", "grpo_app", "rewards", "--prompts", "2", "--set", f"model.name={tiny_model_dir}"]
        + [f"data.path={posts_file}", "grpo.num_generations=4", "grpo.max_completion_length=8", "run.dir=run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "probe: copying the title" in r.stdout and "2 prompts × 4 samples" in r.stdout
    report = json.loads((tmp_path / "run" / "reward_bench.json").read_text())
    assert len(report["samples"]) == 8 and report["total"]["name"] == "total"
