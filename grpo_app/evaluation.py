"""Batch comparison: the same prompts through the base and the tuned model, same seeds, scored alike."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .config import GenerationSettings, RewardSettings
from .generation import InferenceModels
from .rewards import score
from .training import prompt_text


@dataclass
class SideSummary:
    mean_reward: float
    mean_chars: float
    mean_tokens: float


def compare_batch(models: InferenceModels, prompts: list, settings: GenerationSettings, adapter: str,
                  rewards: RewardSettings, batch_size: int = 8, progress=None) -> pd.DataFrame:
    """One row per prompt: base and tuned answers, their lengths and total rewards."""
    total = 2 * len(prompts)

    def report(offset):
        return (lambda done, _n: progress(offset + done, total)) if progress else None

    base = models.generate(prompts, settings, None, batch_size, report(0))
    tuned = models.generate(prompts, settings, adapter, batch_size, report(len(prompts)))
    rows = {"prompt": [prompt_text(p) for p in prompts]}
    for side, gens in (("base", base), ("tuned", tuned)):
        texts = [g.text for g in gens]
        scores = score(rewards, prompts, texts)
        rows[f"{side}_answer"] = texts
        rows[f"{side}_chars"] = [len(t) for t in texts]
        rows[f"{side}_tokens"] = [g.tokens for g in gens]
        for name, values in scores.items():
            rows[f"{side}_{name}"] = values
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> dict[str, SideSummary]:
    return {side: SideSummary(float(df[f"{side}_total"].mean()), float(df[f"{side}_chars"].mean()),
                              float(df[f"{side}_tokens"].mean())) for side in ("base", "tuned")}
