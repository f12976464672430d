"""Held-out quality during training: every `run.eval_steps` steps the model answers a few texts it never trains
on, and the run keeps the adapter that answered them best.

The reward is what the model optimises, so it is the number least able to say whether it is learning: the
held-out score is the task's own check on unseen texts (for summaries, the share of answers that are summaries;
for a task template, its weighted rewards: format and accuracy). Answers are greedy, and the training's random
state is put back afterwards, so evaluating does not change what the run learns.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from .callbacks import Reporter, is_main_process
from .config import Config, ConfigError
from .faults import save_adapter
from .prompts import prompt_ids, prompt_text
from .quality import assess


def heldout_prompts(cfg: Config):
    """The PromptSet to score: `run.eval_prompts` (a file), else the task's held-out split, else a slice of each
    bundled held-out layout (posts, documents, plain texts), else the dataset's `test` split."""
    from .evaluation import HELDOUT, TASK_SETS, PromptSet, heldout_set, prompt_set

    n = max(1, cfg.run.eval_size)
    if cfg.run.eval_prompts:
        return prompt_set(cfg.data, cfg.run.eval_prompts, n)
    task = cfg.data.path.removeprefix("bundled-")
    if task in TASK_SETS:
        return heldout_set(cfg.data, task, n)
    if cfg.data.path in ("", "bundled", "bundled-documents", "bundled-mixed"):  # each layout users bring
        parts = [heldout_set(cfg.data, name, -(-n // len(HELDOUT))) for name in HELDOUT]
        prompts = [p for part in parts for p in part.prompts]
        return PromptSet(prompts[:n], [t for part in parts for t in part.texts][:n])
    from .data import build_prompts

    try:
        ds, _ = build_prompts(replace(cfg.data, split="test", max_samples=n))
    except ConfigError:
        return None
    prompts = list(ds["prompt"])
    return PromptSet(prompts, [prompt_text(p) for p in prompts], None, {c: list(ds[c]) for c in ds.column_names[1:]})


def is_summary_task(cfg: Config) -> bool:
    return "summary" in cfg.reward.functions + cfg.reward.monitor


class HeldoutCallback(TrainerCallback):
    """Scores the held-out prompts every `eval_steps` steps and at the end; saves <run>/best/ on a new best; with
    `run.guard` N, stops the run after N evaluations below the best while the training reward rose."""

    def __init__(self, cfg: Config, run_dir: Path, reporter: Reporter, pset, rewards, sink: dict):
        self.cfg, self.run_dir, self.reporter, self.pset = cfg, run_dir, reporter, pset
        self.funcs, self.weights = rewards
        self.sink = sink  # figures for the next metrics row (LiveCallback writes it)
        self.best: tuple[int, float] | None = None
        self.reward_at_best, self.falling = float("-inf"), 0
        self.guard_message = ""
        self.trainer = None  # set once built: its decoding copy answers far faster than `generate`

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
        every, step = self.cfg.run.eval_steps, state.global_step
        if not every or model is None or not (step % every == 0 or step == state.max_steps):
            return control
        figures = self.score(model, processing_class or kw.get("tokenizer"), state)
        self.sink.update(figures)
        score = figures["heldout/score"]
        rewards = [h["reward"] for h in state.log_history if "reward" in h]
        reward = statistics.fmean(rewards[-every:]) if rewards else float("-inf")  # since the last evaluation
        if self.best is None or score > self.best[1]:
            self.best, self.reward_at_best, self.falling = (step, score), reward, 0
            if is_main_process():
                save_adapter(model, processing_class, self.run_dir / "best")
                (self.run_dir / "best" / "best.json").write_text(json.dumps({"step": step, "score": score}))
        else:  # below the best: the guard counts it when the reward went up meanwhile (the model games it)
            self.falling = self.falling + 1 if reward > self.reward_at_best else 0
        guard = self.cfg.run.guard
        if guard and self.falling >= guard and step < state.max_steps:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
            self.guard_message = (
                f"Stopped by the guard at step {step}: the held-out score fell below step {self.best[0]}'s "
                f"({self.best[1]:.3g}, now {score:.3g}) for {guard} evaluation{'s' if guard != 1 else ''} while the "
                f"reward rose; best/ keeps step {self.best[0]}'s adapter."
            )
            self.reporter.on_log(self.guard_message)
        return control

    def score(self, model, tokenizer, state=None) -> dict[str, float]:
        """Greedy answers to the held-out prompts, scored; the training's random state is left as it was."""
        from .inference.engine import generate

        started = time.perf_counter()
        settings = replace(self.cfg.generation, do_sample=False, max_new_tokens=self.cfg.grpo.max_completion_length)
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        was_training = model.training
        model.eval()
        try:
            fast = getattr(self.trainer, "answer", None)
            ids = fast([prompt_ids(tokenizer, p) for p in self.pset.prompts], settings.max_new_tokens) if fast else None
            if ids is not None:
                texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
            else:
                texts = [g.text for g in generate(model, tokenizer, self.pset.prompts, settings, batch_size=8)]
        finally:
            model.train(was_training)
            torch.set_rng_state(cpu_rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
        figures = {"heldout/seconds": round(time.perf_counter() - started, 2)}
        if is_summary_task(self.cfg):
            checks = [assess(prompt_text(p), t) for p, t in zip(self.pset.prompts, texts, strict=True)]
            figures["heldout/summary_rate"] = statistics.fmean(float(c.summary) for c in checks)
            figures["heldout/copy_rate"] = statistics.fmean(float(bool(c.copies)) for c in checks)
            ideal = self.cfg.reward.ideal_length
            figures["heldout/length_error"] = statistics.fmean(abs(len(t) - ideal) for t in texts)
            figures["heldout/score"] = figures["heldout/summary_rate"]
            return figures
        total = [0.0] * len(texts)
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        for func, weight in zip(self.funcs, self.weights, strict=True):
            kw = {"completion_ids": ids, "trainer_state": state, **self.pset.columns}  # what TRL passes
            values = func(prompts=self.pset.prompts, completions=texts, **kw)
            values = [0.0 if v is None else float(v) for v in values]
            figures[f"heldout/{func.__name__}"] = statistics.fmean(values)
            total = [t + weight * v for t, v in zip(total, values, strict=True)]
        figures["heldout/score"] = statistics.fmean(total)
        return figures


def best_step(run_dir: Path) -> int | None:
    try:
        return int(json.loads((Path(run_dir) / "best" / "best.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return None
