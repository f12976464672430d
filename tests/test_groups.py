"""The group inspector (#23.4): the advantage GRPO gave each completion, and the groups that taught nothing."""

import pytest
import torch

from grpo_app.groups import advantages, step_groups, summary
from grpo_app.runs import Run
from grpo_app.training import train


def _trl_advantages(totals: list[float], size: int, scale: str) -> list[float]:
    """TRL 1.x GRPOTrainer._generate_and_score_completions, the part that turns rewards into advantages."""
    rewards = torch.tensor(totals)
    grouped = rewards.view(-1, size)
    mean = grouped.mean(dim=1).repeat_interleave(size)
    adv = rewards - mean
    if scale == "group":
        adv = adv / (grouped.std(dim=1).repeat_interleave(size) + 1e-4)
    elif scale == "batch":
        adv = adv / (rewards.std() + 1e-4)
    return adv.tolist()


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_are_trls(scale):
    totals = [1.0, 3.0, 2.0, 2.0, 5.0, 5.0, 5.0, 5.0, -1.0, 0.5, 4.0, 2.5]
    assert advantages(totals, 4, scale) == pytest.approx(_trl_advantages(totals, 4, scale), abs=1e-5)


def test_a_run_records_what_each_completion_was_pushed_by(tiny_cfg):
    tiny_cfg.grpo.max_steps = 1
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    rows = Run(result.run_dir).completions()
    assert all({"advantage", "tokens", "truncated"} <= set(r) for r in rows)
    groups = step_groups(rows)
    assert len(groups) == 1 and len(groups[0]["rows"]) == 4  # one prompt, num_generations=4 completions
    for g in groups:
        assert sum(r["advantage"] for r in g["rows"]) == pytest.approx(0.0, abs=1e-3)
        assert all(r["truncated"] == (r["tokens"] >= tiny_cfg.grpo.max_completion_length) for r in g["rows"])


def test_the_summary_names_the_groups_that_taught_nothing():
    rows = [{"prompt": "a", "total": 1.0}, {"prompt": "a", "total": 1.0}]
    rows += [{"prompt": "b", "total": 0.0, "truncated": True}, {"prompt": "b", "total": 2.0}]
    text = summary(step_groups(rows))
    assert text == (
        "1 of 2 groups had a reward spread and moved the model; 1 scored all alike (every advantage 0: nothing "
        "learned from it); 1 completion hit max_completion_length (cut off)."
    )
