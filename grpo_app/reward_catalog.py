"""Task rewards beyond summaries: answers checked against a dataset column, formats, JSON, words, TRL's own
rewards and a reward model. Each is made from `RewardSettings` into TRL's convention `f(prompts, completions,
**columns) -> list[float]`; the dataset's columns arrive by name (`answer`, `keywords`...).

Answers are read from the last `<answer>...</answer>` when there is one, else from the whole completion, so a
reasoning template and a plain one share the checks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .config import ConfigError
from .prompts import completion_text, prompt_text
from .references import answer_column_in
from .settings import RewardSettings

RewardFn = Callable[..., list[float]]
ANSWER_TAG = re.compile(r"<answer>([\s\S]*?)</answer>")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
FENCE = re.compile(r"^```(?:json)?\s*([\s\S]*?)\s*```$")

CATALOG: dict[str, str] = {
    "accuracy": "TRL's accuracy_reward: 1 if the answer equals the answer column by math-verify (LaTeX / boxed "
    "answers), else 0",
    "think_format": "TRL's think_format_reward: 1 if the completion opens with reasoning in <think>...</think>",
    "soft_overlong": "TRL's soft overlong punishment: 0, falling to -1 over the last reward.overlong_buffer tokens "
    "before max_completion_length",
    "cosine": "TRL's cosine-scaled accuracy: correct answers score more when short, wrong ones less when short",
    "repetition": "TRL's repetition penalty on completion tokens: 0 (no repeated 3-gram) to -1",
    "exact_match": "1 if the answer (inside <answer> tags, else the whole completion) equals the answer column, "
    "ignoring case, spaces and end punctuation",
    "numeric_match": "1 if the last number of the answer equals the answer column's number, else 0",
    "regex": "1 if the whole completion matches reward.pattern (default: <think>...</think> then <answer>...</answer>)",
    "json": "1 if the completion is a JSON object with exactly the keys of reward.json_keys (any, when empty) that "
    "satisfies reward.json_schema (if set), 0.5 if another JSON object, 0 otherwise",
    "json_fields": "share of the answer column's JSON fields the completion's JSON object gets right",
    "contains": "share of the words column's words the completion contains",
    "avoids": "minus the share of the words column's words the completion contains",
    "reward_model": "the score reward.reward_model (a sequence-classification model) gives prompt + completion",
    "rouge": "ROUGE-L F-measure (rouge-score, stemmed) of the completion against a reference answer: the answer "
    "column when the data has it, else its reference / summary / tldr / completion column",
}


def final_answer(text: str) -> str:
    found = ANSWER_TAG.findall(text)
    return (found[-1] if found else text).strip()


def last_number(text: str) -> float | None:
    numbers = NUMBER.findall(final_answer(text))
    try:
        return float(numbers[-1].replace(",", "")) if numbers else None
    except ValueError:
        return None


def normalise(text: Any) -> str:
    return " ".join(str(text).casefold().split()).strip(" .!?;:\"'")


def parse_object(text: str) -> dict | None:
    """The completion as a JSON object (a ```json fence around it allowed), else None."""
    text = text.strip()
    fenced = FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return normalise(a) == normalise(b)


def _column(kw: dict, name: str, reward: str, n: int) -> list:
    if name not in kw:
        given = ", ".join(k for k in kw if k not in TRL_KWARGS) or "none"
        raise ConfigError(
            f"The reward '{reward}' needs the dataset column '{name}' (other columns here: {given}); "
            f"set the column in reward.answer_column or reward.words_column."
        )
    return list(kw[name])[:n]


TRL_KWARGS = {"completion_ids", "trainer_state", "log_extra", "log_metric", "prompts", "completions"}


def _words(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else re.split(r"[,;\n]", str(value or ""))
    return [normalise(w) for w in items if normalise(w)]


def _each(name: str, check: Callable[[str, Any], float], column_of: Callable[[RewardSettings], str]):
    def make(settings: RewardSettings, max_len: int) -> RewardFn:
        column = column_of(settings)

        def reward(prompts: list, completions: list, **kw: Any) -> list[float]:
            values = _column(kw, column, name, len(completions))
            return [float(check(completion_text(c), v)) for c, v in zip(completions, values, strict=True)]

        reward.__name__ = name
        return reward

    return make


def _numeric(text: str, expected: Any) -> float:
    got, want = last_number(text), last_number(str(expected))
    return float(got is not None and want is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9))


def _fields(text: str, expected: Any) -> float:
    want = expected if isinstance(expected, dict) else parse_object(str(expected))
    got = parse_object(text)
    if not want or got is None:
        return 0.0
    return sum(1 for k, v in want.items() if k in got and _same(got[k], v)) / len(want)


def _contains(text: str, words: Any) -> float:
    wanted = _words(words)
    said = normalise(text)
    return sum(1 for w in wanted if re.search(rf"\b{re.escape(w)}\b", said)) / len(wanted) if wanted else 0.0


def _schema(text: str):
    """A jsonschema validator for reward.json_schema (a file or the schema itself), or None."""
    if not text.strip():
        return None
    from pathlib import Path

    import jsonschema

    source = Path(text.strip()).expanduser()
    try:
        schema = json.loads(source.read_text() if source.suffix == ".json" and source.is_file() else text)
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except (ValueError, OSError, jsonschema.SchemaError) as e:
        raise ConfigError(f"reward.json_schema is not a valid JSON schema: {str(e).splitlines()[0]}") from None
    return jsonschema.validators.validator_for(schema)(schema)


def _json_reward(settings: RewardSettings, max_len: int) -> RewardFn:
    keys = [k.strip() for k in settings.json_keys.split(",") if k.strip()]
    schema = _schema(settings.json_schema)

    def fits(obj: dict) -> bool:
        return (not keys or set(obj) == set(keys)) and (schema is None or schema.is_valid(obj))

    def json_(prompts: list, completions: list, **kw: Any) -> list[float]:
        scores = []
        for c in completions:
            obj = parse_object(completion_text(c))
            scores.append(0.0 if obj is None else 1.0 if fits(obj) else 0.5)
        return scores

    json_.__name__ = "json"
    return json_


def _regex_reward(settings: RewardSettings, max_len: int) -> RewardFn:
    try:
        pattern = re.compile(settings.pattern, re.DOTALL)
    except re.error as e:
        raise ConfigError(f"reward.pattern is not a valid regular expression: {e}.") from None

    def regex(prompts: list, completions: list, **kw: Any) -> list[float]:
        return [1.0 if pattern.fullmatch(completion_text(c).strip()) else 0.0 for c in completions]

    return regex


def _chat(completions: list) -> list:
    """TRL's rewards read conversational completions: plain text is wrapped as one assistant message."""
    return [[{"role": "assistant", "content": completion_text(c)}] for c in completions]


def _trl(name: str, build: Callable, answer: bool = False, ids: bool = False, chat: bool = True):
    """One of `trl.rewards`, fed as TRL feeds it: chat completions, `solution` from the answer column, token ids."""

    def make(settings: RewardSettings, max_len: int) -> RewardFn:
        func = build(settings, max_len)

        def reward(prompts: list, completions: list, **kw: Any) -> list[float]:
            extra = {k: v for k, v in kw.items() if k not in ("completion_ids", "solution", "completions")}
            if answer:
                extra["solution"] = [str(v) for v in _column(kw, settings.answer_column, name, len(completions))]
            if ids:
                if "completion_ids" not in kw:
                    raise ConfigError(f"The reward '{name}' counts tokens: it needs the completions' token ids.")
                extra["completion_ids"] = kw["completion_ids"]
            if chat:
                extra["completions"] = _chat(completions)
            return [None if x is None else float(x) for x in func(**extra)]

        reward.__name__ = name
        return reward

    return make


def _trl_builtin(name: str) -> Callable:
    import trl.rewards as tr

    return getattr(tr, name)


@lru_cache(maxsize=2)
def _scorer(path: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    except Exception as e:
        raise ConfigError(f"Could not load the reward model '{path}': {e}".split("\n")[0]) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _reward_model(settings: RewardSettings, max_len: int) -> RewardFn:
    import torch

    if not settings.reward_model.strip():
        raise ConfigError("The reward 'reward_model' needs reward.reward_model: a Hub id or a local model folder.")
    model, tokenizer = _scorer(settings.reward_model.strip())

    def reward_model(prompts: list, completions: list, **kw: Any) -> list[float]:
        texts = [f"{prompt_text(p)}\n\n{completion_text(c)}" for p, c in zip(prompts, completions, strict=True)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=1024)
        with torch.inference_mode():
            logits = model(**batch).logits.float()
        return (logits[:, -1] if logits.shape[-1] > 1 else logits[:, 0]).tolist()

    return reward_model


def _rouge_reward(settings: RewardSettings, max_len: int) -> RewardFn:
    """Closeness to what a person wrote: the one summary reward that knows the content a good answer carries.

    Cheap checks (grounded, short, not a copy) are met by a vague sentence; a reference is not."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def rouge(prompts: list, completions: list, **kw: Any) -> list[float | None]:
        column = answer_column_in(kw, settings.answer_column)
        if column is None:  # new prompts (generate, the Compare tab): nothing to compare with; training checks first
            return [None] * len(completions)
        references = _column(kw, column, "rouge", len(completions))
        return [
            scorer.score(str(ref or ""), completion_text(c)).get("rougeL").fmeasure if str(ref or "").strip() else 0.0
            for c, ref in zip(completions, references, strict=True)
        ]

    return rouge


def _answer(settings: RewardSettings) -> str:
    return settings.answer_column


def _words_column(settings: RewardSettings) -> str:
    return settings.words_column


MAKERS: dict[str, Callable[[RewardSettings, int], RewardFn]] = {
    "accuracy": _trl("accuracy", lambda s, n: _trl_builtin("accuracy_reward"), answer=True),
    "think_format": _trl("think_format", lambda s, n: _trl_builtin("think_format_reward")),
    "soft_overlong": _trl(
        "soft_overlong",
        lambda s, n: _trl_builtin("get_soft_overlong_punishment")(n, min(s.overlong_buffer, n)),
        ids=True,
        chat=False,
    ),
    "cosine": _trl("cosine", lambda s, n: _trl_builtin("get_cosine_scaled_reward")(max_len=n), answer=True, ids=True),
    "repetition": _trl(
        "repetition", lambda s, n: _trl_builtin("get_repetition_penalty_reward")(), ids=True, chat=False
    ),
    "exact_match": _each("exact_match", lambda t, v: float(normalise(final_answer(t)) == normalise(v)), _answer),
    "numeric_match": _each("numeric_match", _numeric, _answer),
    "json_fields": _each("json_fields", lambda t, v: _fields(final_answer(t), v), _answer),
    "contains": _each("contains", _contains, _words_column),
    "avoids": _each("avoids", lambda t, v: -_contains(t, v), _words_column),
    "regex": _regex_reward,
    "json": _json_reward,
    "reward_model": _reward_model,
    "rouge": _rouge_reward,
}
