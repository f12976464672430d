"""Prompt datasets: the bundled posts, a Hub dataset, or a local file, turned into TRL's `prompt` column.

TRL 1.x no longer truncates prompts (`max_prompt_length` is gone), so the length limit of the recipe is
applied here, and the user is told how many prompts were shortened or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, concatenate_datasets

from .config import ConfigError
from .errors import first_line
from .prompts import with_instruction
from .settings import DataConfig

# the bundled data: in a checkout, assets/ beside the package; installed, the package's own assets/ (package data)
_INSTALLED = Path(__file__).resolve().parent / "assets"
ASSETS = _INSTALLED if (_INSTALLED / "posts").is_dir() else Path(__file__).resolve().parent.parent / "assets"
BUNDLED = {  # name -> folders of assets/ with train.jsonl and test.jsonl
    "bundled": ("posts",),  # short first-person posts (360-1,400 characters)
    "bundled-documents": ("docs",),  # long documents of varied genres (1-4 kB)
    "bundled-mixed": ("posts", "docs"),  # both: texts of mixed lengths
    "bundled-reason": ("reason",),  # short word problems with a numeric `answer` (the reason template)
    "bundled-extract": ("extract",),  # short texts about a person with the `answer` JSON (the extract template)
}
PROMPT_COLUMNS = ("prompt", "text", "content", "messages", "question", "instruction", "input")
FILE_TYPES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


class DataError(ConfigError):
    """The dataset could not be read or has no usable prompts."""


@dataclass
class DataReport:
    """What preparing the prompts did, for the status line and the CLI."""

    source: str
    column: str
    rows: int
    truncated: int = 0
    dropped: int = 0

    def summary(self) -> str:
        text = f"{self.rows} prompts from {self.source} (column '{self.column}')"
        if self.truncated or self.dropped:
            text += f"; {self.truncated} truncated and {self.dropped} dropped for being too long"
        return text


def read_rows(path: str, split: str = "train", max_mb: float = 0) -> Dataset:
    """The raw rows of a source, with a clear message for each way it can fail."""
    if path in ("", *BUNDLED):
        files = [ASSETS / folder / f"{split}.jsonl" for folder in BUNDLED[path or "bundled"]]
        if not all(f.is_file() for f in files):
            raise DataError(f"The bundled datasets have splits 'train' and 'test', not '{split}'.")
        parts = [_read_file(f) for f in files]
        shared = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
        return concatenate_datasets([p.select_columns(shared) for p in parts])  # an `answer` stays
    local = Path(path).expanduser()
    if local.suffix.lower() in FILE_TYPES or local.exists():
        if not local.is_file():
            raise DataError(f"Dataset file not found: {path}")
        size_mb = local.stat().st_size / 2**20
        if max_mb and size_mb > max_mb:
            raise DataError(f"{local.name} is {size_mb:,.0f} MB, over the {max_mb:g} MB limit (data.max_file_mb).")
        return _read_file(local)
    return _read_hub(path, split)


def _read_file(path: Path) -> Dataset:
    """A local file's rows, read in memory (no datasets cache folder per file). Every way a file can be wrong (not
    UTF-8, broken JSON/CSV/parquet, plain values instead of records, nesting too deep, too big for memory) is one
    DataError naming the file and what it should hold: pandas and pyarrow errors never reach the user as they are."""
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"Unsupported file type '{path.suffix}'. Use one of: {', '.join(FILE_TYPES)}.")
    expected = {
        ".jsonl": "one JSON object per line",
        ".json": "a JSON list of objects",
        ".csv": "a header row, then one comma-separated row per prompt",
        ".parquet": "a parquet table",
        ".txt": "UTF-8 text, one prompt per line",
    }[path.suffix.lower()]
    try:
        if kind == "text":
            lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
            ds = Dataset.from_dict({"prompt": [line for line in lines if line]})
        elif kind == "parquet":
            import pyarrow.parquet as pq

            ds = Dataset(pq.read_table(path))  # keeps the features a datasets-written file declares
        else:
            import pandas as pd

            # Cells stay as written: an answer "007" or "12" reaches a reward as that string, not a number.
            if kind == "csv":
                df = pd.read_csv(path, dtype=str, keep_default_na=False)
            else:
                lines = path.suffix.lower() == ".jsonl"
                df = pd.read_json(path, lines=lines, dtype=False, convert_dates=False)
            if not all(isinstance(c, str) for c in df.columns):  # pandas numbers the columns of lists and values
                raise DataError(f"{path.name} holds plain values or lists, not records: expected {expected}.")
            ds = Dataset.from_pandas(df, preserve_index=False)
    except DataError:
        raise
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path.name} is not UTF-8 text (byte {e.object[e.start]:#04x} at position {e.start}): expected {expected}."
        ) from None
    except RecursionError:
        raise DataError(f"Could not read {path.name}: it is nested too deeply (expected {expected}).") from None
    except MemoryError:
        raise DataError(f"Could not read {path.name}: it does not fit in memory (data.max_file_mb).") from None
    except Exception as e:  # pandas, pyarrow and json raise many types: the first line of the message tells
        first = first_line(e)
        first = first if len(first) <= 160 else first[:157] + "..."
        raise DataError(f"Could not read {path.name} ({first}): expected {expected}.") from None
    if len(ds) == 0:
        raise DataError(f"{path.name} holds no rows: expected {expected}.")
    if not ds.column_names:
        raise DataError(f"{path.name} has rows without fields: expected {expected}.")
    return ds


HUB_HINT = "Use 'bundled' for the posts shipped with the app, or a local .jsonl/.csv/.parquet/.txt file."


def _read_hub(name: str, split: str) -> Dataset:
    from datasets import load_dataset

    from . import hub

    hub.check(name, "dataset", "README.md", HUB_HINT, DataError)
    try:
        return load_dataset(name, split=split)
    except ValueError as e:
        if "split" in str(e).lower():
            raise DataError(f"Dataset '{name}' has no split '{split}'.") from None
        raise DataError(hub.explain(name, "dataset", e, HUB_HINT)) from None
    except Exception as e:
        raise DataError(hub.explain(name, "dataset", e, HUB_HINT)) from None


def detect_column(columns: list[str], wanted: str = "auto") -> str:
    """The prompt column: the one named, else the first of PROMPT_COLUMNS present. Names are quoted, so that a CSV
    header with a newline or a comma in it still gives a one-line message."""
    import reprlib

    names = [str(c) for c in columns]
    shown = ", ".join(reprlib.repr(c) for c in names[:20]) or "none"
    if len(names) > 20:
        shown += f" and {len(names) - 20} more"
    if wanted not in ("", "auto"):
        if wanted not in names:
            raise DataError(f"Column {wanted!r} not found. Columns: {shown}.")
        return wanted
    for name in PROMPT_COLUMNS:
        if name in names:
            return name
    raise DataError(
        f"No prompt column found (looked for {', '.join(PROMPT_COLUMNS)}). Columns: {shown}. Name the column to use."
    )


def to_prompt(value, cfg: DataConfig):
    """A plain string, or chat messages when the data is chat-shaped or `chat_format` is on. Numbers become text;
    anything else (a mapping, a list that is not chat messages, bytes) is a DataError naming the file, rather than
    its repr trained on as if it were a prompt."""
    import reprlib

    source = Path(cfg.path).name if Path(cfg.path).suffix.lower() in FILE_TYPES else cfg.path or "bundled"
    if isinstance(value, list):  # chat messages: keep the conversation up to the last user turn
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value):
            raise DataError(
                f"A prompt in {source} is a list but not chat messages (mappings with a 'role' and a "
                f"'content'): {reprlib.repr(value)}."
            )
        messages = [dict(m) for m in value]
        while messages and messages[-1].get("role") == "assistant":
            messages.pop()
        if not messages:
            raise DataError(f"A chat prompt in {source} has no user message.")
        if not all(isinstance(m.get("content"), str) for m in messages):
            raise DataError(f"A chat prompt in {source} has a message without text content: {reprlib.repr(messages)}.")
        if cfg.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": cfg.system_prompt})
        return messages
    if not (value is None or isinstance(value, (str, int, float))):
        raise DataError(
            f"A prompt in {source} is a {type(value).__name__}, not text or chat messages: {reprlib.repr(value)}."
        )
    text = with_instruction("" if value is None else str(value), cfg.instruction)
    if not cfg.chat_format:
        return text
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return messages + [{"role": "user", "content": text}]


def prompt_tokens(prompt, tokenizer) -> int:
    if isinstance(prompt, str):
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _shorten(prompt, tokenizer, excess: int, keep_end: bool = False):
    """Cut `excess` tokens (plus a margin) off the prompt's text: off the end, or off the start (`keep_end`)."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max(0, len(ids) - excess - 2)
    cut = tokenizer.decode(ids[len(ids) - keep :] if keep_end else ids[:keep], skip_special_tokens=True)
    if isinstance(prompt, str):
        return cut
    return prompt[:-1] + [{**prompt[-1], "content": cut}]


RESERVED = frozenset({"prompt", "completion", "completions", "completion_ids", "prompt_ids"})  # TRL's own names


def build_prompts(
    cfg: DataConfig, tokenizer=None, max_prompt_length: int = 0, split: str | None = None
) -> tuple[Dataset, DataReport]:
    """The dataset TRL trains on and a report of what was done to it: a `prompt` column, plus every other column
    of the source (an `answer`, a `reference`, a `title`...), which TRL hands to the reward functions by name."""
    raw = read_rows(cfg.path, split or cfg.split, cfg.max_file_mb)
    column = detect_column(list(raw.column_names), cfg.prompt_column)
    try:
        values = list(raw[column])
    except (ValueError, TypeError) as e:  # pyarrow cannot turn some nested values back into Python
        raise DataError(
            f"Column {column!r} of {Path(cfg.path).name or cfg.path} cannot be read as prompts ({first_line(e, 120)})."
        ) from None
    if cfg.max_samples > 0:
        values = values[: cfg.max_samples]
    kept = [i for i, v in enumerate(values) if v not in (None, "", [])]
    prompts = [to_prompt(values[i], cfg) for i in kept]
    if not prompts:
        raise DataError(f"Column '{column}' holds no non-empty prompts.")
    report = DataReport(source=cfg.path or "bundled", column=column, rows=len(prompts))
    if tokenizer is not None and max_prompt_length > 0:
        fitting = []
        for i, p in zip(kept, prompts, strict=True):
            n = prompt_tokens(p, tokenizer)
            if n > max_prompt_length and cfg.overlong != "drop":
                p = _shorten(p, tokenizer, n - max_prompt_length, keep_end=cfg.overlong == "truncate_left")
                n = prompt_tokens(p, tokenizer)
                report.truncated += 1
            if n > max_prompt_length:
                report.dropped += 1
                continue
            fitting.append((i, p))
        kept, prompts = [i for i, _ in fitting], [p for _, p in fitting]
        report.rows = len(prompts)
        if not prompts:
            raise DataError(f"Every prompt is longer than max_prompt_length={max_prompt_length} tokens.")
    columns = {"prompt": prompts}
    for name in raw.column_names:
        target = _column_name(name, list(raw.column_names))
        if name != column and target:
            try:
                cells = raw[name]
            except (ValueError, TypeError):  # a column pyarrow cannot hand back is left out, not fatal
                continue
            columns[target] = [cells[i] for i in kept]
    return Dataset.from_dict(columns), report


def _column_name(name: str, columns: list[str]) -> str:
    """The name a source column goes on under ("" = left out): TRL keeps its own names (`completion`...) for the
    completions it samples, so a dataset's `completion` column, its answers (mlabonne/smoltldr's summaries), goes on
    as the `reference` the warm-up, the rouge reward and ROUGE read, unless the data has a `reference` already."""
    if name == "completion" and "reference" not in columns:
        return "reference"
    return "" if name in RESERVED else name


def preview(cfg: DataConfig, n: int = 5) -> tuple[list[str], str, list[dict], int]:
    """Columns, detected prompt column, the first rows and the row count: for the dataset preview."""
    raw = read_rows(cfg.path, cfg.split, cfg.max_file_mb)
    column = detect_column(list(raw.column_names), cfg.prompt_column)
    return list(raw.column_names), column, [raw[i] for i in range(min(n, len(raw)))], len(raw)
