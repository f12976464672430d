"""Runs side by side: what differs in their settings, and how each ended (#23.1).

A user tunes by trying things (another learning rate, another weight, another seed); this puts the runs tried
in one table, with only the settings that differ, their last figures and their `eval` results where they have
them. The charts overlay their metrics step by step (`ui/charts.overlay_figure`).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd

from .runs import Run

SKIPPED = {"run.dir", "run.root", "run.resume_from"}  # differ between any two runs, say nothing


def flat_settings(run: Run) -> dict:
    out = {}
    for section, values in run.config().to_dict().items():
        for name, value in values.items():
            if name == "extra":
                out |= {f"grpo.{k}": v for k, v in value.items()}
            else:
                out[f"{section}.{name}"] = value
    return {k: v for k, v in out.items() if k not in SKIPPED}


def differing_settings(runs: list[Run]) -> dict[str, list]:
    """Each setting whose value is not the same in every run, with each run's value."""
    settings = [flat_settings(r) for r in runs]
    keys = dict.fromkeys(k for s in settings for k in s)
    return {k: [s.get(k) for s in settings] for k in keys if len({json.dumps(s.get(k)) for s in settings}) > 1}


def _last(metrics: list[dict], key: str, n: int = 5) -> float | None:
    values = [m[key] for m in metrics if m.get(key) is not None][-n:]
    return round(statistics.fmean(values), 3) if values else None


def _eval_figures(run: Run) -> dict:
    """The tuned side's headline of the run's eval.json: summaries per set, or a task's total reward."""
    try:
        report = json.loads((run.path / "eval.json").read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for name, result in report.get("sets", {}).items():
        tuned = result.get("tuned", {})
        if "summary_rate" in tuned and name in ("posts", "documents", "plain"):
            out[f"eval {name}: summaries"] = round(tuned["summary_rate"], 3)
        elif "reward/total" in tuned:
            out[f"eval {name}: total reward"] = round(tuned["reward/total"], 3)
    return out


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: name, status, steps, last rewards and KL (mean of the last 5 steps), held-out score,
    best step, eval figures, then the settings that differ."""
    differ = differing_settings(runs) if len(runs) > 1 else {}
    rows = []
    for i, run in enumerate(runs):
        metrics, status = run.metrics(), json.loads(run.status_file.read_text()) if run.status_file.is_file() else {}
        row = {
            "run": run.path.name,
            "status": status.get("status", "?"),
            "steps": metrics[-1]["step"] if metrics else 0,
            "reward (last 5)": _last(metrics, "reward"),
            "KL (last 5)": _last(metrics, "kl"),
            "held-out score": _last(metrics, "heldout/score", 1),
            "best step": status.get("best_step"),
        }
        row |= _eval_figures(run)
        row |= {k: json.dumps(v[i]) if isinstance(v[i], (list, dict)) else v[i] for k, v in differ.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def load_runs(paths: list[str | Path]) -> list[Run]:
    return [Run(p) for p in paths if (Path(p) / "config.yaml").is_file()]
