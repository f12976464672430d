"""The reward test bench: before paying for a run, can these rewards be gamed, and will GRPO learn from them?

A few groups are sampled from the model on dataset prompts, as training would sample them, and scored by every
reward; beside them, lazy answers built from each prompt (the probes) are scored alike. A probe that scores at or
above the median real sample is a way to game that reward, and the report says so in a sentence. Groups whose
answers all score the same teach GRPO nothing (zero advantage), so their share is reported too.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import Config
from .layout import split_layout
from .prompts import prompt_text, without_instruction
from .rewards import build_rewards, token_ids

PLEASANTRY = "Awesome, glad I could help! Let me know if there is anything else."
PROBES = {
    "empty": "an empty answer",
    "prompt": "a copy of the whole prompt",
    "title": "copying the title (or first line)",
    "first_sentence": "copying the first sentence",
    "instruction": "echoing the instruction",
    "ramble": "a ramble of the text up to the length limit",
    "pleasantry": "a chat pleasantry",
    "padding": "one word repeated to the ideal length",
}


def probes(prompt, instruction: str, ideal_chars: int, max_chars: int) -> dict[str, str]:
    """The laziest answers to one prompt, each built from the prompt itself."""
    whole = prompt_text(prompt)
    text = without_instruction(whole, instruction)
    layout = split_layout(whole)
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    kinds = {kind: line for kind, line in reversed(layout.headers)}  # the first of each kind
    title = kinds.get("title") or kinds.get("heading") or kinds.get("label") or first_line
    asked = layout.instruction or instruction.replace("{text}", "").strip()
    word = "great "
    return {
        "empty": "",
        "prompt": whole,
        "title": title,
        "first_sentence": layout.sentences[0] if layout.sentences else first_line,
        "instruction": asked,
        "ramble": " ".join(text.split())[:max_chars],
        "pleasantry": PLEASANTRY,
        "padding": (word * (ideal_chars // len(word) + 1))[:ideal_chars].strip(),
    }


@dataclass
class RewardFinding:
    """One reward over the samples and the probes."""

    name: str
    weight: float
    sample_mean: float
    sample_median: float
    zero_spread_share: float  # groups whose answers this reward scores all alike
    probes: dict[str, float] = field(default_factory=dict)  # mean over the prompts
    beaten_by: dict[str, float] = field(default_factory=dict)  # probe -> share of real samples it scores above


@dataclass
class BenchReport:
    prompts: int
    samples_per_prompt: int
    rewards: list[RewardFinding]
    total: RewardFinding
    samples: list[dict]  # prompt, completion and every score, for a table
    warnings: list[str]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False))
        return path


def _finding(name: str, weight: float, groups: list[list[float]], probe_scores: dict[str, list[float]]):
    flat = [s for g in groups for s in g]
    median = statistics.median(flat) if flat else 0.0
    finding = RewardFinding(
        name,
        weight,
        statistics.fmean(flat) if flat else 0.0,
        median,
        sum(1 for g in groups if max(g) - min(g) < 1e-9) / max(len(groups), 1),
        {k: statistics.fmean(v) for k, v in probe_scores.items()},
    )
    for probe, mean in finding.probes.items():
        above = sum(1 for s in flat if s < mean - 1e-9) / len(flat) if flat else 0.0
        if mean >= median - 1e-9 and above > 0:  # a tie with answers that all score the same games nothing
            finding.beaten_by[probe] = above
    return finding


def _sentence(f: RewardFinding, probe: str) -> str:
    return (
        f"{PROBES[probe][0].upper()}{PROBES[probe][1:]} scores {f.probes[probe]:.3g} on the total reward, above "
        f"{f.beaten_by[probe]:.0%} of real samples (median {f.sample_median:.3g}): it can be gamed this way."
    )


def _grouped(f: RewardFinding) -> str:
    """One line per reward: every probe that reaches its median."""
    probes = ", ".join(f"{PROBES[p]} ({f.probes[p]:.3g})" for p in f.beaten_by)
    return f"On '{f.name}' alone (median real sample {f.sample_median:.3g}): {probes}."


def score_bench(
    cfg: Config, prompts: list, groups: list[list[str]], columns: dict[str, list] | None = None, tokenizer=None
):
    """The report for sampled `groups` (one list of completions per prompt); no model needed (a tokenizer only
    for rewards that count tokens)."""
    funcs, weights = build_rewards(cfg.reward, cfg.grpo.max_completion_length)

    def ids(texts: list[str]) -> dict:
        return {"completion_ids": token_ids(tokenizer, texts)} if tokenizer is not None else {}

    columns = columns or {}
    max_chars = cfg.grpo.max_completion_length * 4  # about 4 characters a token
    lazy = [probes(p, cfg.data.instruction, cfg.reward.ideal_length, max_chars) for p in prompts]
    findings, probe_totals, samples = [], {k: [0.0] * len(prompts) for k in PROBES}, []
    per_sample: dict[str, list[list[float]]] = {}
    for func, weight in zip(funcs, weights, strict=True):
        scored, probe_scores = [], {k: [] for k in PROBES}
        for i, (prompt, group) in enumerate(zip(prompts, groups, strict=True)):
            cols = {k: [v[i]] * len(group) for k, v in columns.items()}
            got = func(prompts=[prompt] * len(group), completions=group, **cols, **ids(group))
            scored.append([0.0 if x is None else float(x) for x in got])
            cols = {k: [v[i]] * len(PROBES) for k, v in columns.items()}
            answers = [lazy[i][k] for k in PROBES]
            got = func(prompts=[prompt] * len(PROBES), completions=answers, **cols, **ids(answers))
            for k, x in zip(PROBES, got, strict=True):
                probe_scores[k].append(0.0 if x is None else float(x))
                probe_totals[k][i] += weight * probe_scores[k][-1]
        per_sample[func.__name__] = scored
        findings.append(_finding(func.__name__, weight, scored, probe_scores))
    totals = [
        [sum(w * per_sample[f.__name__][i][j] for f, w in zip(funcs, weights, strict=True)) for j in range(len(g))]
        for i, g in enumerate(groups)
    ]
    total = _finding("total", 1.0, totals, probe_totals)
    for i, (prompt, group) in enumerate(zip(prompts, groups, strict=True)):
        for j, completion in enumerate(group):
            row = {"prompt": prompt_text(prompt), "completion": completion}
            row |= {name: s[i][j] for name, s in per_sample.items()}
            samples.append(row | {"total": totals[i][j]})
    warnings = [_sentence(total, p) for p in total.beaten_by]
    warnings += [_grouped(f) for f in findings if f.weight and f.beaten_by]
    if total.zero_spread_share >= 0.5:
        warnings.append(
            f"{total.zero_spread_share:.0%} of the sampled groups score all alike on the total reward: GRPO learns "
            "nothing from those (raise the temperature or num_generations, or use a reward that separates answers)."
        )
    return BenchReport(len(prompts), len(groups[0]) if groups else 0, findings, total, samples, warnings)


def run_bench(cfg: Config, n_prompts: int = 4, adapter: str | None = None, progress=None) -> BenchReport:
    """Sample `num_generations` answers for `n_prompts` dataset prompts as training would, then score them."""
    from dataclasses import replace

    from .data import build_prompts
    from .inference.engine import InferenceModels

    data = replace(cfg.data, max_samples=n_prompts)
    ds, _ = build_prompts(data)
    prompts = list(ds["prompt"])[:n_prompts]
    columns = {c: list(ds[c])[:n_prompts] for c in ds.column_names if c != "prompt"}
    n = cfg.grpo.num_generations
    settings = replace(
        cfg.generation,
        max_new_tokens=cfg.grpo.max_completion_length,
        temperature=cfg.grpo.temperature,
        min_p=0.0,
        top_p=1.0,
        do_sample=True,
    )
    models = InferenceModels(cfg)
    gens = models.generate([p for p in prompts for _ in range(n)], settings, adapter, progress=progress)
    groups = [[g.text for g in gens[i * n : (i + 1) * n]] for i in range(len(prompts))]
    return score_bench(cfg, prompts, groups, columns, models.tokenizer)


def report_markdown(report: BenchReport) -> str:
    """One table: the real samples, then each probe, under each reward and the total; then the warnings."""
    columns = [*report.rewards, report.total]
    head = "| | " + " | ".join(f"{f.name} (×{f.weight:g})" if f is not report.total else "**total**" for f in columns)
    lines = [head + " |", "|---" * (len(columns) + 1) + "|"]
    lines.append("| real samples: median | " + " | ".join(f"{f.sample_median:.3g}" for f in columns) + " |")
    lines.append("| groups with zero spread | " + " | ".join(f"{f.zero_spread_share:.0%}" for f in columns) + " |")
    for probe, what in PROBES.items():
        cells = [f"{f.probes[probe]:.3g}" + (" ⚠" if probe in f.beaten_by else "") for f in columns]
        lines.append(f"| probe: {what} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    summary = f"{report.prompts} prompts × {report.samples_per_prompt} samples; ⚠ = at or above the median sample."
    found = "\n".join(f"- {w}" for w in report.warnings) or "- No probe reaches the median real sample."
    return f"{summary}\n\n{text}\n\n{found}"
