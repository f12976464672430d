"""Built-in reward functions, in TRL's calling convention: `f(prompts, completions, **kw) -> list[float]`.

Completions arrive as plain strings or, for chat-format data, as lists of messages. `completion_text`
makes both look the same: `len()` of a chat completion is the number of messages (1), which silently
turns the recipe's length reward into a constant and teaches nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import quality
from .config import ConfigError
from .prompts import completion_text, prompt_text
from .references import ANSWER_COLUMNS
from .reward_catalog import CATALOG, MAKERS
from .settings import RewardSettings

RewardFn = Callable[..., list[float]]


def length_reward(ideal: int, unit: str = "chars") -> RewardFn:
    """The recipe's reward: -|ideal - length|, best at exactly `ideal` characters (or words, or tokens)."""
    if unit not in ("chars", "words", "tokens"):
        raise ConfigError(f"reward.length_unit must be chars, words or tokens, not {unit!r}.")

    def length(prompts: list, completions: list, **kw: Any) -> list[float]:
        if unit == "tokens":
            if "completion_ids" not in kw:
                raise ConfigError("The length reward counts tokens (reward.length_unit): it needs the token ids.")
            return [-abs(ideal - len(ids)) for ids in kw["completion_ids"]]
        texts = [completion_text(c) for c in completions]
        return [-abs(ideal - (len(t.split()) if unit == "words" else len(t))) for t in texts]

    return length


def one_sentence_reward(pattern: str) -> RewardFn:
    """1.0 when the whole (stripped) completion matches `pattern`, else 0.0: a format reward."""
    regex = re.compile(pattern, re.DOTALL)

    def one_sentence(prompts: list, completions: list, **kw: Any) -> list[float]:
        return [1.0 if regex.fullmatch(completion_text(c).strip()) else 0.0 for c in completions]

    return one_sentence


def _named(name: str, func: Callable[[str, str], float]) -> RewardFn:
    """A reward from a `(source, answer) -> float` check of `quality`, in TRL's convention."""

    def reward(prompts: list, completions: list, **kw: Any) -> list[float]:
        return [float(func(prompt_text(p), completion_text(c))) for p, c in zip(prompts, completions, strict=True)]

    reward.__name__ = name
    return reward


QUALITY_REWARDS: dict[str, Callable[[str, str], float]] = {
    "grounding": quality.grounding,
    "no_repeat": lambda source, answer: -quality.repetition(answer),
    "summary": lambda source, answer: float(quality.is_summary(source, answer)),
    "coverage": quality.coverage,
    "no_copy": lambda source, answer: -float(bool(quality.copied(source, answer))),
    "title_gist": quality.title_gist,
}
ALIASES = {"on_topic": "grounding"}  # the name earlier versions used

BUILTIN_REWARDS: dict[str, str] = {
    "length": "-|ideal - length| in characters, words or tokens (reward.length_unit): the recipe's reward",
    "one_sentence": "1 if the completion matches the regex (default: one line ending in . ! or ?), else 0",
    "grounding": "share of the completion's content words found in the prompt (0..1)",
    "no_repeat": "minus the share of repeated 3-word sequences (0 is best)",
    "summary": "1 if the completion passes the 'is a summary' rule (grounded, not repetitive, not filler, copies "
    "no title, heading, label, instruction or sentence, shorter than the text, carries more than the "
    "first sentence), else 0",
    "coverage": "how much of the text's content beyond its title and first sentence the completion carries (0..1)",
    "no_copy": "-1 if the completion copies the title, a heading, a label line, the instruction or one sentence "
    "of the text, else 0",
    "title_gist": "share of the title's (else first heading's) content words the completion conveys (0..1; 0 "
    "without a title, and 0 for a copy): what the post is about, said again with more",
    **CATALOG,
}
# What each reward reads besides the completion: `reward.*` settings and dataset columns (the page's table,
# `python -m grpo_app rewards --list`, docs/rewards.md).
REWARD_INPUTS: dict[str, tuple[str, ...]] = {
    "length": ("reward.ideal_length", "reward.length_unit"),
    "one_sentence": ("reward.regex",),
    "grounding": ("the prompt",),
    "no_repeat": (),
    "summary": ("the prompt",),
    "coverage": ("the prompt",),
    "no_copy": ("the prompt",),
    "title_gist": ("the prompt",),
    "accuracy": ("column reward.answer_column",),
    "think_format": (),
    "soft_overlong": ("grpo.max_completion_length", "reward.overlong_buffer"),
    "cosine": ("column reward.answer_column", "grpo.max_completion_length"),
    "repetition": (),
    "exact_match": ("column reward.answer_column",),
    "numeric_match": ("column reward.answer_column",),
    "regex": ("reward.pattern",),
    "json": ("reward.json_keys", "reward.json_schema"),
    "json_fields": ("column reward.answer_column",),
    "contains": ("column reward.words_column",),
    "avoids": ("column reward.words_column",),
    "reward_model": ("reward.reward_model", "the prompt"),
    "rouge": (f"column reward.answer_column, else {' / '.join(ANSWER_COLUMNS)}",),
}


def catalogue_markdown() -> str:
    """Every built-in reward as a table row: its name, what it scores, what it reads besides the completion."""
    rows = ["| reward | what it scores | reads |", "|---|---|---|"]
    for name, text in BUILTIN_REWARDS.items():
        reads = ", ".join(f"`{x}`" if x.startswith(("reward.", "grpo.")) else x for x in REWARD_INPUTS[name])
        cell = text.replace("|", "\\|")  # a table cell: its bars escaped
        rows.append(f"| `{name}` | {cell} | {reads or '-'} |")
    return "\n".join(rows)


def load_custom(spec: str) -> RewardFn:
    """`path/to/file.py:func` or `package.module:func`: a user's own reward in TRL's convention."""
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            module_spec = importlib.util.spec_from_file_location(f"user_rewards_{path.stem}", path)
            if module_spec is None or not path.is_file():
                raise FileNotFoundError(f"file not found: {target}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        func = getattr(module, name)
    except Exception as e:
        raise ConfigError(f"Could not load reward function '{spec}': {e}") from None
    if not callable(func):
        raise ConfigError(f"Reward '{spec}' is not a function.")
    return func


def is_known(name: str) -> bool:
    return name in BUILTIN_REWARDS or name in ALIASES or (":" in name and bool(name.rpartition(":")[2]))


def build_rewards(settings: RewardSettings, max_completion_length: int = 256) -> tuple[list[RewardFn], list[float]]:
    """The reward callables and their weights, in the order the config lists them, then the monitored ones
    (weight 0: TRL logs them as `rewards/<name>/mean` and they leave the advantage alone)."""
    makers: dict[str, Callable[[], RewardFn]] = {
        "length": lambda: length_reward(settings.ideal_length, settings.length_unit),
        "one_sentence": lambda: one_sentence_reward(settings.regex),
    }
    for name, check in QUALITY_REWARDS.items():
        makers[name] = lambda name=name, check=check: _named(name, check)
    for name, make in MAKERS.items():
        makers[name] = lambda make=make: make(settings, max_completion_length)
    for alias, name in ALIASES.items():
        makers[alias] = lambda alias=alias, name=name: _named(alias, QUALITY_REWARDS[name])
    watched = [name for name in dict.fromkeys(settings.monitor) if name not in settings.functions]
    funcs = [makers[name]() if name in makers else load_custom(name) for name in settings.functions + watched]
    weights = [float(w) for w in settings.weights] or [1.0] * len(settings.functions)
    return funcs, weights + [0.0] * len(watched)


def columns_used(settings: RewardSettings, columns: list[str]) -> dict[str, list[str]]:
    """Which dataset columns each reward reads, by its parameter names (TRL passes every column by name).
    A reward that takes `**kwargs` may read any of them and is listed with none; one that cannot load is left out."""
    try:
        funcs, _ = build_rewards(settings)
    except ConfigError:
        return {}
    used = {}
    for func in funcs:
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            continue
        used[func.__name__] = [c for c in columns if c in params and c not in ("prompts", "completions")]
    return used


def token_ids(tokenizer, completions: list) -> list[list[int]]:
    """The completions' token ids, as TRL hands them to rewards that count tokens."""
    return [tokenizer(completion_text(c), add_special_tokens=False)["input_ids"] for c in completions]


def score(
    settings: RewardSettings, prompts: list, completions: list, tokenizer=None, **columns: list
) -> dict[str, list[float]]:
    """Every configured reward for each (prompt, completion), plus their weighted `total`; `columns` are the
    dataset's other columns, one value per completion, as TRL passes them (a reward's None, 'does not apply',
    counts as 0)."""
    funcs, weights = build_rewards(settings)
    if tokenizer is not None:
        columns.setdefault("completion_ids", token_ids(tokenizer, completions))
    scores = {
        f.__name__: [0.0 if x is None else float(x) for x in f(prompts=prompts, completions=completions, **columns)]
        for f in funcs
    }
    values = list(scores.values())
    scores["total"] = [sum(w * col[i] for w, col in zip(weights, values, strict=True)) for i in range(len(completions))]
    return scores
