"""Base vs tuned on held-out prompts, scored alike: the Compare tab's batch comparison and `eval`.

Both sides answer the same prompts with the same seeds. Each answer gets every configured reward and every
quality check (`quality.assess`); each side gets the figures a user reads first: the length error against the
ideal, the share of answers that are summaries, that copy, grounding, coverage, repetition, and ROUGE against the
reference summaries where the prompts have them. Beside the two models stand two answers that need no model (the
text's title line and its first sentence), scored the same way: the bar a tuned model has to clear.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from .config import Config
from .data import ASSETS, build_prompts
from .files import write_atomic
from .inference.engine import InferenceModels
from .prompts import prompt_text, without_instruction
from .quality import assess
from .references import BASELINES, baseline_answers, reference_column, rouge_scores
from .rewards import score
from .settings import DataConfig, GenerationSettings, RewardSettings

HELDOUT = {  # the bundled held-out texts, one file per layout users bring; each row has a reference summary
    "posts": ASSETS / "posts" / "test.jsonl",  # SUBREDDIT / TITLE / POST, as the recipe's dataset lays them out
    "documents": ASSETS / "docs" / "test.jsonl",  # long documents that open with a markdown heading
    "plain": ASSETS / "plain" / "test.jsonl",  # posts, articles and everyday texts with no title at all
}
TASK_SETS = {  # the held-out split of each task template's bundled data (reference answers in `answer`)
    "reason": ASSETS / "reason" / "test.jsonl",  # word problems: format and numeric accuracy
    "extract": ASSETS / "extract" / "test.jsonl",  # texts about a person: valid JSON and field accuracy
}
MODEL_SIDES = ("base", "tuned")
SIDES = (*BASELINES, *MODEL_SIDES)  # title, lead (no model), base, tuned
FIGURES = {  # figure -> (label, higher is better)
    "length_error": ("mean distance from the ideal length (chars)", False),
    "summary_rate": ("answers that are summaries", True),
    "copy_rate": ("answers that copy (title, heading, label, instruction, a sentence)", False),
    "coverage": ("coverage of the body beyond its opening", True),
    "rouge1": ("ROUGE-1 against the reference", True),
    "rouge2": ("ROUGE-2 against the reference", True),
    "rougeL": ("ROUGE-L against the reference", True),
    "grounding": ("grounding (share of words from the text)", True),
    "repetition": ("repetition (repeated 3-grams)", False),
    "degenerate_rate": ("degenerate answers (empty, filler, loops)", False),
    "mean_chars": ("mean length (chars)", None),
    "mean_tokens": ("mean tokens", None),
}
CHECK_COLUMNS = {
    "answer",
    "chars",
    "tokens",
    "grounding",
    "repetition",
    "degenerate",
    "is_summary",
    "why_not",
    "copies",
    "coverage",
    "rouge1",
    "rouge2",
    "rougeL",
}


@dataclass
class PromptSet:
    """Held-out prompts as a run formats them, the texts alone (the baselines are cut from them), and the
    reference answers when the source has a reference column."""

    prompts: list
    texts: list[str]
    references: list[str] | None = None
    columns: dict[str, list] = field(default_factory=dict)  # the source's other columns, for the rewards

    def __len__(self) -> int:
        return len(self.prompts)


def prompt_set(data: DataConfig, path: str | Path, limit: int = 0) -> PromptSet:
    """The prompts of a file (column detected), formatted as the run's training prompts were."""
    ds, _ = build_prompts(replace(data, path=str(path), prompt_column="auto", max_samples=limit))
    prompts = list(ds["prompt"])
    texts = [without_instruction(prompt_text(p), data.instruction) for p in prompts]
    column = reference_column(ds.column_names)
    columns = {c: list(ds[c]) for c in ds.column_names if c != "prompt"}
    return PromptSet(prompts, texts, [str(r or "") for r in ds[column]] if column else None, columns)


def heldout_set(data: DataConfig, which: str, limit: int = 0) -> PromptSet:
    """The bundled held-out `posts`, `documents` or `plain` texts (or a task's `reason` / `extract` split),
    formatted as the run's training prompts were."""
    return prompt_set(data, {**HELDOUT, **TASK_SETS}[which], limit)


def default_sets(data: DataConfig, limit: int = 0) -> dict[str, PromptSet]:
    """What `eval` scores a run on: its task's held-out split, or the three summary layouts."""
    task = data.path.removeprefix("bundled-")
    names = [task] if task in TASK_SETS else list(HELDOUT)
    return {name: heldout_set(data, name, limit) for name in names}


def answer_columns(
    side: str, pset: PromptSet, texts: list[str], tokens: list[int] | None, rewards: RewardSettings, tokenizer=None
) -> dict[str, list]:
    """One side's answers with their length, tokens, every reward, every quality check and ROUGE."""
    checks = [assess(prompt_text(p), t) for p, t in zip(pset.prompts, texts, strict=True)]
    cols: dict[str, list] = {f"{side}_answer": texts, f"{side}_chars": [len(t) for t in texts]}
    if tokens is not None:
        cols[f"{side}_tokens"] = tokens
    for name, values in score(rewards, pset.prompts, texts, tokenizer, **pset.columns).items():
        cols[f"{side}_{name}"] = values
    cols[f"{side}_grounding"] = [q.grounding for q in checks]
    cols[f"{side}_repetition"] = [q.repetition for q in checks]
    cols[f"{side}_coverage"] = [q.coverage for q in checks]
    cols[f"{side}_degenerate"] = [q.degenerate for q in checks]
    cols[f"{side}_copies"] = [q.copies for q in checks]
    cols[f"{side}_is_summary"] = [q.summary for q in checks]
    cols[f"{side}_why_not"] = [q.reason for q in checks]
    if pset.references is not None:
        for key, values in rouge_scores(pset.references, texts).items():
            cols[f"{side}_{key}"] = values
    return cols


def compare_batch(
    models: InferenceModels,
    pset: PromptSet,
    settings: GenerationSettings,
    adapter: str,
    rewards: RewardSettings,
    batch_size: int = 64,
    progress=None,
) -> pd.DataFrame:
    """One row per prompt: the baselines', the base model's and the tuned model's answers, scored alike."""
    total = 2 * len(pset)

    def report(offset):
        return (lambda done, _n: progress(offset + done, total)) if progress else None

    rows: dict[str, list] = {"prompt": [prompt_text(p) for p in pset.prompts]}
    if pset.references is not None:
        rows["reference"] = pset.references
    for side, answers in baseline_answers(pset.texts).items():
        if any(answers):  # a plain text has no title: no title baseline
            rows.update(answer_columns(side, pset, answers, None, rewards, models.tokenizer))
    for i, side in enumerate(MODEL_SIDES):
        gens = models.generate(
            pset.prompts, settings, adapter if side == "tuned" else None, batch_size, report(i * len(pset))
        )
        texts = [g.text for g in gens]
        rows.update(answer_columns(side, pset, texts, [g.tokens for g in gens], rewards, models.tokenizer))
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, ideal: int) -> dict[str, dict[str, float]]:
    """Each side's figures (see FIGURES) and the mean of every reward, for every side the frame holds."""
    out = {}
    for side in SIDES:
        if f"{side}_answer" not in df:
            continue
        figures = {
            "length_error": float((df[f"{side}_chars"] - ideal).abs().mean()),
            "summary_rate": float(df[f"{side}_is_summary"].mean()),
            "copy_rate": float((df[f"{side}_copies"] != "").mean()),
            "coverage": float(df[f"{side}_coverage"].mean()),
            "grounding": float(df[f"{side}_grounding"].mean()),
            "repetition": float(df[f"{side}_repetition"].mean()),
            "degenerate_rate": float((df[f"{side}_degenerate"] != "").mean()),
            "mean_chars": float(df[f"{side}_chars"].mean()),
        }
        if f"{side}_tokens" in df:
            figures["mean_tokens"] = float(df[f"{side}_tokens"].mean())
        for key in ("rouge1", "rouge2", "rougeL"):
            if f"{side}_{key}" in df:
                figures[key] = float(df[f"{side}_{key}"].mean())
        for col in df.columns:
            name = col.removeprefix(f"{side}_")
            if col.startswith(f"{side}_") and name not in CHECK_COLUMNS:
                figures[f"reward/{name}"] = float(df[col].mean())
        out[side] = {k: round(v, 4) for k, v in figures.items()}
    return out


TASK_FIGURES = ("mean_chars", "mean_tokens")  # a task's own metric is its rewards


def figures_markdown(summary: dict, title: str = "", task: bool = False) -> str:
    """The figures as a table: the no-model baselines, then base | tuned, the better model in bold. For a task
    template (`task`), the summary checks stay out: its rewards (format, accuracy) are its metric."""
    sides = [s for s in SIDES if s in summary]
    names = {**BASELINES, "base": "base", "tuned": "tuned"}
    head = f"| {title} | " + " | ".join(names[s] for s in sides) + " |\n|---|" + "---:|" * len(sides) + "\n"
    lines = []
    keys = list(TASK_FIGURES if task else FIGURES) + sorted(k for k in summary["base"] if k.startswith("reward/"))
    for key in keys:
        label, higher = FIGURES[key] if key in FIGURES else (f"reward: {key.removeprefix('reward/')}", True)
        if summary["base"].get(key) is None or summary["tuned"].get(key) is None:
            continue
        fmt = "{:.0%}" if key.endswith("_rate") else "{:.2f}"
        cells = {s: fmt.format(summary[s][key]) if summary[s].get(key) is not None else "–" for s in sides}
        b, t = summary["base"][key], summary["tuned"][key]
        if higher is not None and b != t:
            best = "tuned" if (t > b) == higher else "base"
            cells[best] = f"**{cells[best]}**"
        lines.append(f"| {label} | " + " | ".join(cells[s] for s in sides) + " |")
    return head + "\n".join(lines)


def evaluate(
    models: InferenceModels, cfg: Config, adapter: str, sets: dict[str, PromptSet], batch_size: int = 64, progress=None
) -> dict:
    """Base and tuned on each named prompt set; the report `eval` writes (figures and every answer)."""
    report: dict = {
        "adapter": str(adapter),
        "model": cfg.model.name,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "ideal_length": cfg.reward.ideal_length,
        "generation": asdict(cfg.generation),
        "rewards": cfg.reward.functions,
        "sets": {},
    }
    for name, pset in sets.items():
        started = time.perf_counter()
        df = compare_batch(
            models,
            pset,
            cfg.generation,
            adapter,
            cfg.reward,
            batch_size,
            (lambda d, t, name=name: progress(name, d, t)) if progress else None,
        )
        report["sets"][name] = {
            "prompts": len(pset),
            "seconds": round(time.perf_counter() - started, 1),
            **summarize(df, cfg.reward.ideal_length),
            "answers": df.to_dict(orient="records"),
        }
    return report


def write_report(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=1, ensure_ascii=False))
    return path
