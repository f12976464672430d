"""Reference answers and trivial baselines: is the tuned model closer to what a person wrote than a copy is?

A held-out text may come with a reference summary (a `reference`, `summary` or `tldr` column; every bundled
held-out text has one, written for this project). Answers are scored against it with ROUGE-1/2/L (Google's
`rouge-score`, F-measure, Porter stemming), and so are two answers that need no model at all: the text's title
line and its first sentence (lead-1). A model that does not beat "copy the title" has learned nothing.
"""

from __future__ import annotations

from .layout import split_layout

REFERENCE_COLUMNS = ("reference", "summary", "tldr", "reference_summary")
# what a user's data may name its answers; a `completion` column reaches the engine as `reference` (data.py)
ANSWER_COLUMNS = (*REFERENCE_COLUMNS, "completion")
ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")
BASELINES = {"title": "copy the title", "lead": "copy the first sentence"}


def answer_column_in(columns, preferred: str = "") -> str | None:
    """The column holding answers to learn from or score against: `preferred` when the data has it, else the first
    of ANSWER_COLUMNS it has (None: no answers)."""
    return next((c for c in [preferred, *ANSWER_COLUMNS] if c and c in columns), None)


def reference_column(columns: list[str]) -> str | None:
    """The column holding reference answers, if the prompt set has one."""
    return next((c for c in REFERENCE_COLUMNS if c in columns), None)


def baseline_answers(texts: list[str]) -> dict[str, list[str]]:
    """The trivial answers for each text: its title line ("" when it has none) and its first sentence."""
    layouts = [split_layout(t) for t in texts]
    return {"title": [lay.title for lay in layouts], "lead": [lay.lead for lay in layouts]}


def rouge_scores(references: list[str], answers: list[str]) -> dict[str, list[float]]:
    """ROUGE-1/2/L F-measure of each answer against its reference (0 for an empty answer or reference)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)
    out: dict[str, list[float]] = {key: [] for key in ROUGE_KEYS}
    for reference, answer in zip(references, answers, strict=True):
        scores = scorer.score(str(reference or ""), str(answer or ""))
        for key in ROUGE_KEYS:
            out[key].append(round(scores[key].fmeasure, 4))
    return out
