"""What can go wrong during a run, and the one sentence each failure gets.

A fault stops the run (a reward that raises or returns NaN, gradients that turn NaN, out of memory, a full or
read-only disk); what was saved before stays as it was, and the user reads what happened and what to do.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .config import Config, ConfigError
from .errors import first_line
from .models import out_of_memory


class TrainingFault(RuntimeError):
    """A run that cannot go on (a reward fails, the loss turns NaN): stop with this sentence.

    `keep_adapter`: whether the weights in memory are still good to save (False once they may be NaN)."""

    def __init__(self, message: str, keep_adapter: bool = True):
        super().__init__(message)
        self.keep_adapter = keep_adapter


def check_scores(name: str, scores: list, n: int, step: int) -> None:
    """One number (or None: 'does not apply', as TRL allows) per completion, each finite."""
    if len(scores) != n:
        raise TrainingFault(f"The reward '{name}' returned {len(scores)} scores for {n} completions at step {step}.")
    for i, x in enumerate(scores):
        if x is None:
            continue
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise TrainingFault(
                f"The reward '{name}' returned {x!r} for completion {i + 1} at step {step}: "
                "rewards must be finite numbers (or None)."
            )


def finite(tensors: list[torch.Tensor]) -> bool:
    return not tensors or bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors)))


DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file size limit was reached",
}


def failure_message(e: BaseException, cfg: Config) -> str:
    """One sentence for a run that failed, with what to do about it."""
    if isinstance(e, (TrainingFault, ConfigError)):
        return str(e)
    if out_of_memory(e):
        return (
            f"Out of memory ({first_line(e)[:160]}). Lower grpo.per_device_train_batch_size, "
            "grpo.num_generations, grpo.max_completion_length or grpo.max_prompt_length, or turn "
            "gradient checkpointing on."
        )
    code = disk_errno(e)
    if code:
        where = f" {e.filename}" if isinstance(e, OSError) and e.filename else ""
        return (
            f"Could not write{where}: {DISK_ERRORS[code]}. Files saved before (config, metrics, the last "
            "adapter and checkpoint) are intact; free space or choose another run.root, then resume."
        )
    return f"{type(e).__name__}: {first_line(e)}"


def disk_errno(e: BaseException) -> int:
    """The errno of a failed write, also when a library (safetensors' Rust writer) reports it only as text."""
    if isinstance(e, OSError) and e.errno in DISK_ERRORS:
        return e.errno
    text = str(e)
    return next((code for code in DISK_ERRORS if f"os error {code})" in text or os.strerror(code) in text), 0)


def free_memory() -> None:
    """After a failure (an OOM above all) give the memory back, so the app keeps serving."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def save_adapter(model, tokenizer, folder: Path) -> None:
    """Save into a temporary sibling, then swap it in: a crash or a full disk never leaves half an adapter.

    Only the trained adapter: after a warm-up, TRL keeps a frozen copy of it as the KL's reference (adapter "ref"),
    which PEFT would save beside it, 20 MB more in every save that nothing loads."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    active = getattr(model, "active_adapter", None) if hasattr(model, "peft_config") else None
    try:
        model.save_pretrained(tmp, **({"selected_adapters": [active]} if isinstance(active, str) else {}))
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        old = folder.with_name(f".{folder.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
