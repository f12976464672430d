"""Supervised warm-up: a few steps on the dataset's reference answers before GRPO starts.

GRPO only reinforces what the model already samples. On the offline SmolLM2-135M, seven rounds of reward design
never made it write a post's problem and question in one sentence: it copied the title, or the first line, because
that is what it sampled (docs/experiments.md, issue #18). Shown the reference answers for a minute, it writes in
their style, and GRPO then shapes length and form. The loss is the answers' mean negative log-likelihood, the LM
head run on answer tokens only (`inference/logprobs.py`), examples batched by length so little is padding, and
each batch cut into passes of bounded size so memory stays where GRPO's steps keep it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from datasets import Dataset

from .config import ConfigError
from .inference import logprobs
from .prompts import render_prompt
from .references import ANSWER_COLUMNS, answer_column_in
from .settings import SFTSettings

# Padded tokens per forward pass: each keeps ~0.6 MB of activations for backward on SmolLM2-135M, so a batch of
# eight long documents in one pass (6,144 tokens) took the quick run from 2.8 to 9.9 GB.
PASS_TOKENS = 1024


@dataclass
class Example:
    prompt: list[int]
    answer: list[int]  # ending with the end-of-turn token, so the model learns to stop

    def __len__(self) -> int:
        return len(self.prompt) + len(self.answer)


def answer_column(columns: list[str], wanted: str = "auto") -> str:
    """The column holding the answers to learn from; a ConfigError naming what is there when none is."""
    if wanted != "auto":
        if wanted not in columns:
            raise ConfigError(f"sft.column '{wanted}' is not a column of the dataset (it has: {', '.join(columns)}).")
        return wanted
    found = answer_column_in(columns)
    if found is None:
        raise ConfigError(_no_answers(["sft.steps"], columns))
    return found


def check_answers(cfg, columns: list[str], extra: Dataset | None = None, warm_up: bool = True) -> None:
    """The warm-up and the rouge reward learn from reference answers: without them, one sentence before the run
    starts (the rouge reward would otherwise fail at the first step, and the quick preset uses both). With
    `extra` (sft.extra_data's rows) the warm-up may learn from those alone; a resumed run (`warm_up` False) does
    not warm up again, so only the rouge reward's answers are checked."""
    steps = cfg.sft.steps and warm_up
    rouge = "rouge" in (*cfg.reward.functions, *cfg.reward.monitor)  # TRL scores a weight of 0 too
    if rouge and answer_column_in(columns, cfg.reward.answer_column) is None:
        needs_both = steps and extra is None
        raise ConfigError(
            _no_answers(["sft.steps", "the rouge reward"] if needs_both else ["the rouge reward"], columns)
        )
    if steps:
        _answer_columns(cfg, columns, extra)


def read_extra(cfg, tokenizer, warm_up: bool = True) -> Dataset | None:
    """sft.extra_data's rows as the warm-up sees them (the training data's instruction, chat format and prompt
    length applied), or None when there is no warm-up to use them (none set, sft.steps 0, or a resumed run); a
    ConfigError naming the setting when they cannot be read."""
    if not (cfg.sft.steps and cfg.sft.extra_data and warm_up):
        return None
    from .data import build_prompts

    source = replace(cfg.data, path=cfg.sft.extra_data, split="train", max_samples=0)
    try:
        return build_prompts(source, tokenizer, cfg.grpo.max_prompt_length)[0]
    except ConfigError as e:
        raise ConfigError(f"sft.extra_data: {e}") from None


def answer_sets(cfg, dataset: Dataset, extra: Dataset | None = None) -> list[tuple[Dataset, str]]:
    """Each dataset the warm-up learns from, with its answer column: the training data's answers, and
    sft.extra_data's beside them (the training data may then have none)."""
    own, theirs = _answer_columns(cfg, list(dataset.column_names), extra)
    pairs = [(dataset, own), (extra, theirs)]
    return [(data, column) for data, column in pairs if data is not None and column]


def _answer_columns(cfg, columns: list[str], extra: Dataset | None) -> tuple[str | None, str | None]:
    """The answer column of the training data and of the extra rows. Without extra rows the training data must
    have one; with them, the extra rows must, and `sft.column` names the column of both."""
    if extra is None:
        return answer_column(columns, cfg.sft.column), None
    wanted = cfg.sft.column
    own = answer_column_in(columns) if wanted == "auto" else (wanted if wanted in columns else None)
    theirs = list(extra.column_names)
    found = answer_column_in(theirs) if wanted == "auto" else (wanted if wanted in theirs else None)
    if found is None:
        named = f"a '{wanted}'" if wanted != "auto" else f"a {', '.join(ANSWER_COLUMNS)}"
        raise ConfigError(
            f"sft.extra_data ({cfg.sft.extra_data}) has no answers to learn from: it needs {named} column "
            f"(it has: {', '.join(theirs)}). Add one, or clear sft.extra_data."
        )
    return own, found


def _no_answers(users: list[str], columns: list[str]) -> str:
    off = " and ".join("set sft.steps=0" if u == "sft.steps" else "drop the rouge reward" for u in users)
    return (
        f"{' and '.join(users)} need{'s' if len(users) == 1 else ''} reference answers: the dataset has no "
        f"{', '.join(ANSWER_COLUMNS)} column (it has: {', '.join(columns)}). Add one, or {off}."
    )


def build_examples(dataset, column: str, tokenizer) -> list[Example]:
    """Token ids of each prompt (as GRPO renders it) and of its reference answer, where the row has one."""
    stop = tokenizer.eos_token or ""
    out = []
    for prompt, answer in zip(dataset["prompt"], dataset[column], strict=True):
        if not isinstance(answer, str) or not answer.strip():
            continue
        ids = tokenizer(render_prompt(prompt, tokenizer), add_special_tokens=False)["input_ids"]
        out.append(Example(ids, tokenizer(answer.strip() + stop, add_special_tokens=False)["input_ids"]))
    return out


def batches(examples: list[Example], size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """`steps` batches of example indices, drawn as they are needed (a million steps cost nothing up front): each
    pass over the data shuffled, then cut into batches of similar length (a post beside a post, a document beside a
    document), the batches themselves in random order."""
    rng, given = random.Random(seed), 0
    while given < steps:
        order = list(range(len(examples)))
        rng.shuffle(order)
        chunks = [order[i : i + size * 8] for i in range(0, len(order), size * 8)]
        epoch = []
        for chunk in chunks:  # sort within a window of 8 batches: similar lengths, still a random mix
            chunk.sort(key=lambda i: len(examples[i]))
            epoch += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(epoch)
        yield from epoch[: steps - given]
        given += min(len(epoch), steps - given)


def passes(batch: list[Example], budget: int = PASS_TOKENS) -> list[list[Example]]:
    """The batch cut into forward passes of at most `budget` padded tokens each (a long text alone if need be)."""
    out: list[list[Example]] = []
    for e in sorted(batch, key=len):
        if out and (len(out[-1]) + 1) * len(e) <= budget:  # sorted: the new example is the longest of its pass
            out[-1].append(e)
        else:
            out.append([e])
    return out


def answer_nll(model, batch: list[Example], pad_id: int) -> torch.Tensor:
    """Summed negative log-likelihood of the answer tokens of one forward pass, the prompt as context."""
    width = max(len(e) for e in batch)
    device = model.device
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    target = torch.zeros_like(ids, dtype=torch.bool)  # positions whose next token is an answer token
    for row, e in enumerate(batch):
        ids[row, : len(e)] = torch.tensor(e.prompt + e.answer, device=device)
        mask[row, : len(e)] = 1
        target[row, len(e.prompt) - 1 : len(e) - 1] = True
    tokens = ids[:, 1:][target[:, :-1]]
    parts = logprobs.lean_parts(model)
    if parts is None:  # a head the lean path does not cover: the model's own logits
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][target[:, :-1]].float()
        return torch.nn.functional.cross_entropy(logits, tokens, reduction="sum")
    decoder, head = parts
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1][target[:, :-1]]
    logps, _ = logprobs.token_logprobs(head(hidden), tokens)
    return -logps.sum()


def answer_loss(model, batch: list[Example], pad_id: int, backward: bool = False) -> float:
    """Mean negative log-likelihood per answer token over the batch, pass by pass (each pass's gradient taken
    before the next runs, when `backward`): what the warm-up minimises."""
    total, loss = sum(len(e.answer) for e in batch), 0.0
    for part in passes(batch):
        with torch.set_grad_enabled(backward):
            nll = answer_nll(model, part, pad_id) / total
        if backward:
            nll.backward()
        loss += nll.item()
    return loss


def warm_up_examples(sets: list[tuple[Dataset, str]], tokenizer) -> list[list[Example]]:
    """The examples of each (dataset, answer column) pair, in order; a ConfigError when none has an answer."""
    parts = [build_examples(dataset, column, tokenizer) for dataset, column in sets]
    if not any(parts):
        names = " and ".join(f"'{column}'" for _, column in sets)
        raise ConfigError(f"sft.steps: the column {names} holds no answers to learn from.")
    return parts


def warm_up(
    model,
    tokenizer,
    examples: list[Example],
    settings: SFTSettings,
    seed: int,
    report,
    stop: threading.Event,
) -> list[dict]:
    """Train the LoRA weights of `model` (a PeftModel) for `settings.steps` steps on `examples`.

    `report(row, line)` is told each step. Returns one row per step (step, loss, learning rate, seconds)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plan, total = batches(examples, settings.batch_size, settings.steps, seed), settings.steps
    history, was_training = [], model.training
    model.train()
    try:
        for step, rows in enumerate(plan, 1):
            if stop.is_set():
                break
            began = time.time()
            lr = settings.learning_rate * (1 - (step - 1) / total)  # linear decay, as GRPO's schedule
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = answer_loss(model, [examples[i] for i in rows], pad_id, backward=True)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            row = {"step": step, "loss": round(loss, 4), "learning_rate": lr, "seconds": time.time() - began}
            history.append(row)
            report(row, f"Warm-up on the reference answers: step {step}/{total}, loss {row['loss']:.3f}")
    finally:
        model.train(was_training)
    return history


def warm_up_run(
    cfg,
    model,
    tokenizer,
    dataset: Dataset,
    run_dir: Path,
    reporter,
    stop: threading.Event,
    extra: Dataset | None = None,
):
    """The run's warm-up of `model` (a PeftModel), trained on the answers of the training data and of `extra`
    (`read_extra`), its adapter saved to `<run>/adapter` (a Stop after the warm-up loses nothing) and each step
    written to `<run>/sft.jsonl` and sent to the reporter (`on_warmup`, the live loss chart)."""
    from .callbacks import is_main_process
    from .faults import save_adapter
    from .inference.kernels import lora_inputs_kept_bf16
    from .runs import Run, append_jsonl

    lora_inputs_kept_bf16(model)  # the bf16 input kept for backward, as in GRPO's steps
    began = time.time()

    main = is_main_process()  # every process warms up alike (same seed, same batches); one writes

    def report(row: dict, line: str) -> None:
        reporter.on_warmup(row)  # the chart's point before the status line that counts it
        reporter.on_status("loading", line)
        if main:
            append_jsonl(Run(run_dir).warmup_file, row)

    sets = answer_sets(cfg, dataset, extra)
    parts = warm_up_examples(sets, tokenizer)
    examples = [e for part in parts for e in part]
    if extra is not None:  # the extra rows come last
        extra_n = len(parts[-1])
        reporter.on_log(
            f"Warm-up examples: {len(examples) - extra_n} from the training data, {extra_n} from sft.extra_data."
        )
    history = warm_up(model, tokenizer, examples, cfg.sft, cfg.grpo.seed, report, stop)
    if history and main:
        save_adapter(model, tokenizer, run_dir / "adapter")
        first, last = history[0]["loss"], history[-1]["loss"]
        reporter.on_log(
            f"Warm-up: {len(history)} supervised steps, loss {first:.3f} -> {last:.3f}, {time.time() - began:.0f} s."
        )
    return model
