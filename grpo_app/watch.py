"""Reading a run's metrics the way an experienced user would: is the reward being gamed?

The watched quality metrics are rewards logged with weight 0 (`reward.monitor`), so TRL writes them as
`rewards/<name>/mean` beside the optimised ones. When the reward climbs while they fall, the policy is
learning to please the reward rather than to do the task: the dashboard says so in words.
"""

from __future__ import annotations

QUALITY_KEYS = {  # metric -> (label, transform into "higher is better, 0..1", sharp drop)
    "summary": ("summaries", lambda v: v, 0.2),
    "grounding": ("grounding", lambda v: v, 0.15),
    "on_topic": ("grounding", lambda v: v, 0.15),
    "no_repeat": ("non-repeated 3-grams", lambda v: 1 + v, 0.15),
    "coverage": ("coverage", lambda v: v, 0.15),
    "no_copy": ("not copied", lambda v: 1 + v, 0.2),  # a fall here is copies rising: said as such
}
WINDOW = 5
LOW_SUMMARY_RATE = 0.2  # a rising reward with fewer summaries than this is not learning the task


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def quality_series(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per watched metric, as 'higher is better' in 0..1."""
    out = {}
    for name, (_, transform, _) in QUALITY_KEYS.items():
        key = f"rewards/{name}/mean"
        points = [(r["step"], transform(r[key])) for r in rows if r.get(key) is not None and "step" in r]
        if points:
            out[name] = points
    return out


def hacking_warning(rows: list[dict], window: int = WINDOW) -> str:
    """A sentence when the reward rose while a watched quality metric fell sharply; "" otherwise."""
    rewards = [r["reward"] for r in rows if r.get("reward") is not None]
    if len(rewards) < 2 * window:
        return ""
    early, late = _mean(rewards[:window]), _mean(rewards[-window:])
    spread = _mean([r["reward_std"] for r in rows[:window] if r.get("reward_std") is not None] or [0.0])
    if late - early <= max(0.25 * spread, 0.05 * abs(early), 1e-9):
        return ""
    falls, rises, low = [], [], ""
    for name, points in quality_series(rows).items():
        label, _, sharp = QUALITY_KEYS[name]
        values = [v for _, v in points]
        if len(values) < 2 * window:
            continue
        before, now = _mean(values[:window]), _mean(values[-window:])
        if before - now >= sharp and name == "no_copy":
            rises.append(f"copies (the title, a heading, a sentence) from {1 - before:.0%} to {1 - now:.0%}")
        elif before - now >= sharp:
            falls.append(f"{label} from {before:.0%} to {now:.0%}")
        elif name == "summary" and now < LOW_SUMMARY_RATE:
            low = f"only {now:.0%} of the latest completions are summaries"
    parts = [f"{' and '.join(falls)} fell" if falls else "", f"{' and '.join(rises)} rose" if rises else ""]
    what = " and ".join(p for p in parts if p) or low
    if not what:
        return ""
    return (
        f"Reward hacking? The reward rose from {early:.2f} to {late:.2f} while {what}. The model is learning "
        "to please the reward, not to do the task: read the completions below (failing ones are marked), then "
        "add grounding, summary, coverage or no_copy to the rewards, raise beta (KL) or lower the learning "
        "rate."
    )
