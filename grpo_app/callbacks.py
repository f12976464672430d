"""What a training run tells the outside world while it runs: the Reporter interface, each sampled group with
its rewards (completions.jsonl), each step's logs (metrics.jsonl), progress, Stop, periodic adapter saves."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from transformers import TrainerCallback

from .faults import TrainingFault, check_scores, finite, first_line, save_adapter
from .groups import advantages
from .memory import trim
from .models import out_of_memory
from .prompts import completion_text, prompt_text
from .runs import append_jsonl


def is_main_process() -> bool:
    """Rank 0 under `accelerate launch` / torchrun (or a single process): the one that writes the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


class Reporter:
    """Receives what a run does; the default does nothing (the CLI relies on TRL's own progress bar)."""

    def on_status(self, status: str, message: str = "") -> None: ...

    def on_log(self, line: str) -> None: ...

    def on_progress(self, step: int, total: int) -> None: ...

    def on_metrics(self, row: dict) -> None: ...

    def on_completions(self, step: int, rows: list[dict]) -> None: ...

    def on_warmup(self, row: dict) -> None:
        """A warm-up step (step, loss, learning rate, seconds), before GRPO's first: the loss chart draws it."""

    def on_history(
        self, metrics: list[dict], completions: list[dict], elapsed: float, warmup: list[dict] | None = None
    ) -> None:
        """A resumed run's logs before this session (and its clock), so a live view can show the whole run."""

    def on_run_dir(self, path: str) -> None:
        """The run folder exists: the run passed its checks."""


class CompletionRecorder:
    """Wraps the reward functions so each sampled group is recorded with its per-function rewards."""

    def __init__(
        self,
        funcs: list,
        weights: list[float],
        run_dir: Path,
        reporter: Reporter,
        group_size: int = 1,
        scale_rewards: str = "group",
        max_tokens: int = 0,
    ):
        self.funcs, self.weights, self.run_dir, self.reporter = funcs, weights, run_dir, reporter
        self.group_size, self.scale_rewards, self.max_tokens = group_size, scale_rewards, max_tokens
        self._scores: dict[str, list[float]] = {}
        self._tokens: list[int] | None = None

    def wrapped(self) -> list:
        return [self._wrap(i, f) for i, f in enumerate(self.funcs)]

    def _wrap(self, index: int, func):
        def reward(prompts: list, completions: list, **kw: Any) -> list[float]:
            state = kw.get("trainer_state")
            step = (state.global_step if state else 0) + 1
            try:
                scores = list(func(prompts=prompts, completions=completions, **kw))
            except Exception as e:
                if out_of_memory(e):
                    raise
                raise TrainingFault(
                    f"The reward '{func.__name__}' failed at step {step}: {type(e).__name__}: {first_line(e)}"
                ) from e
            check_scores(func.__name__, scores, len(completions), step)
            self._scores[func.__name__] = scores
            if index == len(self.funcs) - 1:
                ids = kw.get("completion_ids")
                self._tokens = [len(x) for x in ids] if ids is not None and len(ids) == len(completions) else None
                self._emit(step, prompts, completions)
            return scores

        reward.__name__ = func.__name__
        return reward

    def _emit(self, step: int, prompts: list, completions: list) -> None:
        if not is_main_process():
            return
        rows = []
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            rewards = {name: float(s[i]) if s[i] is not None else None for name, s in self._scores.items()}
            total = sum(w * (r or 0.0) for w, r in zip(self.weights, rewards.values(), strict=True))
            row = {"step": step, "prompt": prompt_text(p), "completion": completion_text(c)}
            row |= {"rewards": rewards, "total": total}
            if self._tokens is not None:
                row["tokens"] = self._tokens[i]
                row["truncated"] = bool(self.max_tokens) and self._tokens[i] >= self.max_tokens
            rows.append(row)
        # what GRPO pushed each completion by (this process's groups; TRL's own figure under accelerate may
        # differ where a group spans processes)
        pushed = advantages([r["total"] for r in rows], self.group_size, self.scale_rewards)
        for row, adv in zip(rows, pushed, strict=True):
            row["advantage"] = round(adv, 4)
        for row in rows:
            append_jsonl(self.run_dir / "completions.jsonl", row)
        self.reporter.on_completions(step, rows)


class LiveCallback(TrainerCallback):
    """Appends each log to metrics.jsonl, reports progress, honours stop, saves the adapter periodically."""

    def __init__(
        self,
        run_dir: Path,
        reporter: Reporter,
        stop: threading.Event,
        save_steps: int,
        completions_per_step: int,
        started: float,
        trim_memory: bool = False,
    ):
        self.run_dir, self.reporter, self.stop = run_dir, reporter, stop
        self.save_steps, self.completions_per_step = save_steps, completions_per_step
        self.trim_memory = trim_memory  # hand the step's freed memory back (speed.return_memory)
        self.extra: dict = {}  # figures other callbacks add to the next metrics row (held-out scores)
        self.started = started  # the run's clock: model loading included, earlier sessions of a resume too

    def on_train_begin(self, args, state, control, **kw):
        done = f", resumed at step {state.global_step}" if state.global_step else ""
        self.reporter.on_status("training", f"Training: {state.max_steps} steps{done}.")
        self.reporter.on_progress(state.global_step, state.max_steps)

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero:
            return
        logs = dict(logs or {})
        if not any(k.startswith(("reward", "loss")) for k in logs):
            return  # end-of-training summary (train_runtime ...), not a step
        row = {"step": state.global_step, "elapsed": round(time.time() - self.started, 2), **logs}
        row.update(self.extra)
        self.extra.clear()
        rss = getattr(self, "_rss", 0) or psutil.Process().memory_info().rss
        row["memory_gb"] = round(rss / 2**30, 3)  # this process at the end of the step
        if logs.get("step_time") and logs.get("completions/mean_length") is not None:
            row["completion_tokens_per_s"] = (
                logs["completions/mean_length"] * self.completions_per_step / max(logs["step_time"], 1e-9)
            )
        append_jsonl(self.run_dir / "metrics.jsonl", row)
        self.reporter.on_metrics(row)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        """NaN/inf gradients stop the run before they reach the weights (the last save stays good)."""
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None] if model else []
        if not finite(grads):
            raise TrainingFault(
                f"The gradients became NaN or inf at step {state.global_step + 1} (a learning rate "
                "too high, or huge rewards with scale_rewards=none). The run stopped before updating "
                "the weights; the adapter and checkpoints saved before are kept.",
                keep_adapter=False,
            )

    def on_optimizer_step(self, args, state, control, model=None, **kw):
        weights = [p for p in model.parameters() if p.requires_grad] if model else []
        if not finite([w.detach() for w in weights]):
            raise TrainingFault(
                f"The weights became NaN or inf at step {state.global_step + 1} (the learning rate "
                "is too high). The run stopped; the adapter and checkpoints saved before are kept.",
                keep_adapter=False,
            )

    def on_step_end(self, args, state, control, model=None, **kw):
        self._rss = psutil.Process().memory_info().rss  # what the step held, before any trim
        if self.trim_memory:
            trim()
        if (
            self.save_steps
            and state.global_step % self.save_steps == 0
            and model is not None
            and state.is_world_process_zero
        ):
            save_adapter(model, kw.get("processing_class"), self.run_dir / "adapter")
        # after the save: the step's metrics row (on_log) follows at once, so a client that saw the step counted
        # does not find the metrics of the step before for the length of a save
        self.reporter.on_progress(state.global_step, state.max_steps)
        if self.stop.is_set():
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"  # a checkpoint at the stop: Resume loses nothing
            self.reporter.on_status("stopping", f"Stopping after step {state.global_step}…")
        return control
