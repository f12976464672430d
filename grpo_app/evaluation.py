"""Base vs tuned on held-out prompts, scored alike: the Compare tab's batch comparison and `eval`.

Both sides answer the same prompts with the same seeds. Each answer gets every configured reward and every
quality check (`quality.assess`); each side gets the figures a user reads first: the length error
against the ideal, the share of answers that are summaries, grounding, repetition and degenerate answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from .config import Config, DataConfig, GenerationSettings, RewardSettings
from .data import ASSETS, build_prompts
from .files import write_atomic
from .generation import InferenceModels
from .quality import assess
from .rewards import completion_text, score
from .training import prompt_text

HELDOUT = {"posts": ASSETS / "posts" / "test.jsonl", "documents": ASSETS / "docs" / "test.jsonl"}
SIDES = ("base", "tuned")
FIGURES = {  # figure -> (label, higher is better)
    "length_error": ("mean distance from the ideal length (chars)", False),
    "summary_rate": ("answers that are summaries", True),
    "grounding": ("grounding (share of words from the text)", True),
    "repetition": ("repetition (repeated 3-grams)", False),
    "degenerate_rate": ("degenerate answers (empty, filler, loops)", False),
    "mean_chars": ("mean length (chars)", None),
    "mean_tokens": ("mean tokens", None),
}


def prompts_from(data: DataConfig, path: str | Path, limit: int = 0) -> list:
    """The prompts of a file (column detected), formatted as the run's training prompts were."""
    prompts, _ = build_prompts(replace(data, path=str(path), prompt_column="auto", max_samples=limit))
    return list(prompts["prompt"])


def heldout_prompts(data: DataConfig, which: str, limit: int = 0) -> list:
    """The bundled held-out `posts` or `documents`, formatted as the run's training prompts were."""
    return prompts_from(data, HELDOUT[which], limit)


def answer_columns(side: str, prompts: list, gens: list, rewards: RewardSettings) -> dict[str, list]:
    """One side's answers with their length, tokens, every reward and every quality check."""
    texts = [g.text for g in gens]
    checks = [assess(completion_text(p), t) for p, t in zip(prompts, texts, strict=True)]
    cols: dict[str, list] = {f"{side}_answer": texts, f"{side}_chars": [len(t) for t in texts],
                             f"{side}_tokens": [g.tokens for g in gens]}
    for name, values in score(rewards, prompts, texts).items():
        cols[f"{side}_{name}"] = values
    cols[f"{side}_grounding"] = [q.grounding for q in checks]
    cols[f"{side}_repetition"] = [q.repetition for q in checks]
    cols[f"{side}_degenerate"] = [q.degenerate for q in checks]
    cols[f"{side}_is_summary"] = [q.summary for q in checks]
    cols[f"{side}_why_not"] = [q.reason for q in checks]
    return cols


def compare_batch(models: InferenceModels, prompts: list, settings: GenerationSettings, adapter: str,
                  rewards: RewardSettings, batch_size: int = 64, progress=None) -> pd.DataFrame:
    """One row per prompt: base and tuned answers, their lengths, rewards and quality checks."""
    total = 2 * len(prompts)

    def report(offset):
        return (lambda done, _n: progress(offset + done, total)) if progress else None

    rows: dict[str, list] = {"prompt": [prompt_text(p) for p in prompts]}
    for i, side in enumerate(SIDES):
        gens = models.generate(prompts, settings, adapter if side == "tuned" else None, batch_size,
                               report(i * len(prompts)))
        rows.update(answer_columns(side, prompts, gens, rewards))
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, ideal: int) -> dict[str, dict[str, float]]:
    """Each side's figures (see FIGURES) and the mean of every reward."""
    out = {}
    for side in SIDES:
        figures = {
            "length_error": float((df[f"{side}_chars"] - ideal).abs().mean()),
            "summary_rate": float(df[f"{side}_is_summary"].mean()),
            "grounding": float(df[f"{side}_grounding"].mean()),
            "repetition": float(df[f"{side}_repetition"].mean()),
            "degenerate_rate": float((df[f"{side}_degenerate"] != "").mean()),
            "mean_chars": float(df[f"{side}_chars"].mean()),
            "mean_tokens": float(df[f"{side}_tokens"].mean()),
        }
        skip = {"answer", "chars", "tokens", "grounding", "repetition", "degenerate", "is_summary", "why_not"}
        for col in df.columns:
            name = col.removeprefix(f"{side}_")
            if col.startswith(f"{side}_") and name not in skip:
                figures[f"reward/{name}"] = float(df[col].mean())
        out[side] = {k: round(v, 4) for k, v in figures.items()}
    return out


def figures_markdown(summary: dict, title: str = "") -> str:
    """The figures as a base | tuned table, the better side in bold."""
    head = f"| {title} | base | tuned |\n|---|---:|---:|\n"
    lines = []
    keys = list(FIGURES) + sorted(k for k in summary["base"] if k.startswith("reward/"))
    for key in keys:
        label, higher = FIGURES[key] if key in FIGURES else (f"reward: {key.removeprefix('reward/')}", True)
        b, t = summary["base"].get(key), summary["tuned"].get(key)
        if b is None or t is None:
            continue
        fmt = "{:.0%}" if key.endswith("_rate") else "{:.2f}"
        cells = [fmt.format(b), fmt.format(t)]
        if higher is not None and b != t:
            best = int((t > b) == higher)
            cells[best] = f"**{cells[best]}**"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return head + "\n".join(lines)


def evaluate(models: InferenceModels, cfg: Config, adapter: str, sets: dict[str, list],
             batch_size: int = 64, progress=None) -> dict:
    """Base and tuned on each named prompt set; the report `eval` writes (figures and every answer)."""
    report: dict = {"adapter": str(adapter), "model": cfg.model.name, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "ideal_length": cfg.reward.ideal_length, "generation": asdict(cfg.generation),
                    "rewards": cfg.reward.functions, "sets": {}}
    for name, prompts in sets.items():
        started = time.perf_counter()
        df = compare_batch(models, prompts, cfg.generation, adapter, cfg.reward, batch_size,
                           (lambda d, t, name=name: progress(name, d, t)) if progress else None)
        report["sets"][name] = {"prompts": len(prompts), "seconds": round(time.perf_counter() - started, 1),
                                **summarize(df, cfg.reward.ideal_length),
                                "answers": df.to_dict(orient="records")}
    return report


def write_report(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=1, ensure_ascii=False))
    return path
