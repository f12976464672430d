"""Refuse a run that cannot fit before it starts: an impossible batch must be a sentence, not the OOM killer.

On Linux a CPU process rarely gets a clean out-of-memory error: allocations succeed lazily and the kernel kills
the whole process later, the app and every visitor's page with it. So the smallest memory a step certainly needs
(weights, the generation KV cache, one step's logits) is compared with the memory free now; an estimate that is
a floor refuses only what cannot work.
"""

from __future__ import annotations

import psutil
import torch

from .config import Config, ConfigError

GB = 2**30


def floor_bytes(cfg: Config, model_config, dtype_bytes: int) -> int:
    """A lower bound of what a training step holds at once (bytes)."""
    text = getattr(model_config, "text_config", None) or model_config
    hidden = int(getattr(text, "hidden_size", 0) or 0)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    heads = int(getattr(text, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or (hidden // heads if heads else 0))
    vocab = int(getattr(text, "vocab_size", 0) or 0)
    inter = int(getattr(text, "intermediate_size", 0) or 4 * hidden)
    g = cfg.grpo
    rows = int(g.extra.get("generation_batch_size") or g.per_device_train_batch_size * g.gradient_accumulation_steps)
    params = layers * (2 * hidden * hidden + 2 * hidden * kv_heads * head_dim + 3 * hidden * inter) + vocab * hidden
    weights = params * dtype_bytes * (2 if g.beta > 0 else 1)  # a reference copy for the KL term
    kv_cache = rows * g.max_completion_length * layers * 2 * kv_heads * head_dim * dtype_bytes
    logits = rows * vocab * 4 + g.per_device_train_batch_size * g.max_completion_length * vocab * dtype_bytes
    return weights + kv_cache + logits


def free_bytes(device: str) -> int | None:
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    try:
        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def check_fits(cfg: Config, model_path: str, device: str, dtype: str) -> None:
    """ConfigError with the figures and what to lower when even the floor exceeds the free memory."""
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(model_path, trust_remote_code=cfg.model.trust_remote_code)
    need = floor_bytes(cfg, model_config, torch.finfo(getattr(torch, dtype)).bits // 8)
    free = free_bytes(device)
    if free is not None and need > free:
        raise ConfigError(
            f"Out of memory before it starts: a step needs at least {need / GB:,.1f} GB and {free / GB:,.1f} GB is "
            f"free on the {device}. Lower grpo.per_device_train_batch_size x gradient_accumulation_steps (the "
            f"{cfg.grpo.per_device_train_batch_size * cfg.grpo.gradient_accumulation_steps} completions sampled at "
            "once) or grpo.max_completion_length."
        )


# glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def _libc():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


def return_freed_memory(mmap_threshold: int = 1 << 20) -> bool:
    """Make freed CPU tensors go back to the system. glibc raises its mmap threshold each time a big block is
    freed, after which activations and logits come from the heap, whose holes are never returned: a quick run
    crept from 3 to 5.5 GB over 100 steps. A fixed threshold (and few arenas) keeps big blocks in their own maps."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_ARENA_MAX, 2))


def trim() -> None:
    """Hand the heap's free tail and free pages back to the system (glibc), e.g. after a training step."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def peak_rss_gb() -> float:
    """The most memory this process has held (Linux reports kilobytes; macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 3)
