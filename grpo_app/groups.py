"""What GRPO did with each sampled group: the advantage each completion got, and the groups that taught nothing.

GRPO pushes a completion up by its advantage: its total reward minus its group's mean, divided by the group's
standard deviation (`scale_rewards="group"`, TRL's default), the batch's (`"batch"`) or nothing (`"none"`). A group
whose completions all score the same has advantage 0 everywhere: the step learned nothing from that prompt.
"""

from __future__ import annotations

import statistics

EPS = 1e-4  # TRL adds it to the standard deviation


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0  # unbiased, as torch.std


def advantages(totals: list[float], group_size: int, scale: str = "group") -> list[float]:
    """One advantage per completion, as TRL computes it from consecutive groups of `group_size`."""
    size = max(1, group_size)
    groups = [totals[i : i + size] for i in range(0, len(totals), size)]
    batch_std = _std(totals)
    out = []
    for group in groups:
        mean, std = statistics.fmean(group), _std(group)
        divisor = {"group": std + EPS, "batch": batch_std + EPS}.get(scale, 1.0)
        out += [(t - mean) / divisor for t in group]
    return out


def step_groups(rows: list[dict]) -> list[dict]:
    """A step's completions (completions.jsonl rows) in their groups: consecutive rows of the same prompt, each
    group with its mean, spread and whether it taught anything."""
    groups: list[dict] = []
    for row in rows:
        if not groups or groups[-1]["prompt"] != row["prompt"]:
            groups.append({"prompt": row["prompt"], "rows": []})
        groups[-1]["rows"].append(row)
    for g in groups:
        totals = [r.get("total", 0.0) for r in g["rows"]]
        g["mean"], g["spread"] = statistics.fmean(totals), max(totals) - min(totals)
        g["learned"] = g["spread"] > 1e-9
        g["truncated"] = sum(1 for r in g["rows"] if r.get("truncated"))
    return groups


def summary(groups: list[dict]) -> str:
    """One sentence on what a step learned from."""
    if not groups:
        return "No completions recorded for this step."
    idle = sum(1 for g in groups if not g["learned"])
    n = len(groups)
    truncated = sum(g["truncated"] for g in groups)
    text = f"{n - idle} of {n} group{'s' if n != 1 else ''} had a reward spread and moved the model"
    if idle:
        text += f"; {idle} scored all alike (every advantage 0: nothing learned from {'it' if idle == 1 else 'them'})"
    if truncated:
        text += f"; {truncated} completion{'s' if truncated != 1 else ''} hit max_completion_length (cut off)"
    return text + "."
