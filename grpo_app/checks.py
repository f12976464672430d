"""Whole-config checks: what TRL would reject later (or never), said before anything runs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from .config import SECTIONS, Config, ConfigError
from .settings import GRPOSettings


def validate(cfg: Config) -> Config:
    """Check what TRL would reject later (or never), with messages a user can act on."""
    g, problems = cfg.grpo, _not_finite(cfg)
    if problems:  # NaN compares false with everything: say so before any other check reads it
        raise ConfigError(" ".join(problems))
    if g.num_generations < 2:
        problems.append("grpo.num_generations must be at least 2: GRPO compares completions within a group.")
    if g.learning_rate <= 0:
        problems.append("grpo.learning_rate must be positive.")
    if g.save_steps < 0 or g.save_total_limit < 0:
        problems.append("grpo.save_steps and grpo.save_total_limit must be >= 0.")
    for name in (
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "max_completion_length",
        "max_prompt_length",
        "logging_steps",
    ):
        if getattr(g, name) < 1:
            problems.append(f"grpo.{name} must be at least 1.")
    gen_batch = g.extra.get("generation_batch_size") or g.per_device_train_batch_size * g.gradient_accumulation_steps
    if g.num_generations >= 2 and gen_batch % g.num_generations:
        problems.append(
            f"The generation batch (per_device_train_batch_size x gradient_accumulation_steps = {gen_batch}) must be "
            f"divisible by grpo.num_generations ({g.num_generations})."
        )
    if g.max_steps == 0 or (g.max_steps < 0 and g.num_train_epochs <= 0):
        problems.append("Set grpo.max_steps > 0, or grpo.num_train_epochs > 0 with max_steps = -1.")
    if g.beta < 0:
        problems.append("grpo.beta must be >= 0.")
    if not 0 < g.top_p <= 1 or not 0 < cfg.generation.top_p <= 1:
        problems.append("top_p must be in (0, 1].")
    if g.temperature <= 0:
        problems.append("grpo.temperature must be positive: GRPO samples its completions.")
    if cfg.generation.do_sample and cfg.generation.temperature <= 0:
        problems.append(
            "generation.temperature must be positive while sampling (or set "
            "generation.do_sample=false for greedy decoding)."
        )
    if not 0 <= cfg.generation.min_p < 1:
        problems.append("generation.min_p must be in [0, 1).")
    if cfg.data.max_file_mb < 0:
        problems.append("data.max_file_mb must be >= 0 (0 = no limit).")
    if cfg.lora.r < 1 or cfg.lora.lora_alpha <= 0:
        problems.append("lora.r and lora.lora_alpha must be positive.")
    if cfg.sft.steps < 0 or cfg.sft.batch_size < 1 or (cfg.sft.steps and cfg.sft.learning_rate <= 0):
        problems.append("sft.steps must be >= 0, sft.batch_size at least 1 and sft.learning_rate positive.")
    if not 0 <= cfg.lora.lora_dropout < 1:
        problems.append("lora.lora_dropout must be in [0, 1).")
    if cfg.data.overlong not in ("truncate", "truncate_left", "drop"):
        problems.append("data.overlong must be 'truncate', 'truncate_left' or 'drop'.")
    from .rewards import BUILTIN_REWARDS, is_known

    unknown = [f for f in cfg.reward.functions + cfg.reward.monitor if not is_known(f)]
    if not cfg.reward.functions:
        problems.append("Choose at least one reward function.")
    if unknown:
        problems.append(
            f"Unknown reward function(s) {unknown}. Built-in: {', '.join(BUILTIN_REWARDS)}; "
            "or your own as file.py:function."
        )
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in cfg.reward.weights):
        problems.append(f"reward.weights must be numbers, got {cfg.reward.weights}.")
    elif cfg.reward.weights and len(cfg.reward.weights) != len(cfg.reward.functions):
        n = len(cfg.reward.functions)
        problems.append(
            f"reward.weights has {len(cfg.reward.weights)} values for {n} reward function{'' if n == 1 else 's'}."
        )
    if cfg.run.processes < 1:
        problems.append("run.processes must be at least 1.")
    if cfg.reward.ideal_length < 1:
        problems.append("reward.ideal_length must be at least 1 character.")
    if "one_sentence" in cfg.reward.functions + cfg.reward.monitor:
        import re

        try:
            re.compile(cfg.reward.regex)
        except re.error as e:
            problems.append(f"reward.regex (the one_sentence pattern) is not a valid regular expression: {e}.")
    if cfg.generation.max_new_tokens < 1:
        problems.append("generation.max_new_tokens must be at least 1.")
    for name in (
        "logits_head",
        "merged_generation",
        "skip_checkpointing",
        "shared_prefix",
        "fast_decode",
        "grouped_attention",
    ):
        if getattr(cfg.speed, name) not in ("auto", "on", "off"):
            problems.append(f"speed.{name} must be auto, on or off.")
    problems += _tracker_problems(cfg.run.report_to)
    for key in ("run.dir", "run.root", "run.resume_from"):
        if ".." in Path(str(_get(cfg, key))).parts:
            problems.append(f"{key} must not contain '..': give the folder itself (an absolute path works).")
    if g.vllm_mode not in ("colocate", "server"):
        problems.append("grpo.vllm_mode must be 'colocate' or 'server'.")
    if not 0 < g.vllm_gpu_memory_utilization <= 1:
        problems.append("grpo.vllm_gpu_memory_utilization must be in (0, 1].")
    if g.vllm_server_base_url and not g.vllm_server_base_url.startswith(("http://", "https://")):
        problems.append("grpo.vllm_server_base_url must start with http:// or https://.")
    secrets = [k for k in g.extra if any(word in k.lower() for word in ("token", "api_key", "password", "secret"))]
    if secrets:
        problems.append(
            f"grpo.{secrets[0]}: tokens never go in a config (it is saved in the run folder); set "
            "HF_TOKEN or WANDB_API_KEY in the environment instead."
        )
    if problems:
        raise ConfigError(" ".join(problems))
    return cfg


def _get(cfg: Config, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(cfg, section), name)


def _not_finite(cfg: Config) -> list[str]:
    """Every numeric setting (and reward weight) that is NaN or infinite, by its key."""
    out = []
    for section in SECTIONS:
        for f in dataclasses.fields(getattr(cfg, section)):
            value = getattr(getattr(cfg, section), f.name)
            values = value if f.name == "weights" else [value]
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    out.append(f"{section}.{f.name} is {v}: give a finite number.")
                    break
    return out


TRACKERS = {"trackio": "trackio", "tensorboard": "tensorboard", "wandb": "wandb"}  # name -> package


def trackers(report_to: str) -> list[str]:
    return [t.strip() for t in report_to.split(",") if t.strip() and t.strip() != "none"]


def _tracker_problems(report_to: str) -> list[str]:
    import importlib.util

    out = []
    for name in trackers(report_to):
        if name not in TRACKERS:
            out.append(f"run.report_to: unknown tracker '{name}' (none, {', '.join(TRACKERS)}).")
        elif importlib.util.find_spec(TRACKERS[name]) is None:
            out.append(f"run.report_to={name} needs the {TRACKERS[name]} package: pip install {TRACKERS[name]}.")
    return out


def check_vllm(g: GRPOSettings, device: str) -> None:
    """vLLM asked for: installed, on CUDA, and in server mode a `trl vllm-serve` answering, before any load."""
    if not g.use_vllm:
        return
    import importlib.util

    if device != "cuda":
        raise ConfigError("vLLM generation needs a CUDA GPU; this run is on the CPU (set grpo.use_vllm=false).")
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "grpo.use_vllm is on but vLLM is not installed: pip install vllm (the version TRL's "
            "docs name), or set grpo.use_vllm=false."
        )
    if g.vllm_mode == "server":
        from .hub import reachable

        address = g.vllm_server_base_url or "http://0.0.0.0:8000"
        if not reachable(address):
            raise ConfigError(
                f"No vLLM server answers at {address}: start one first with `trl vllm-serve "
                "--model <the same model>` on its own GPU(s), or use grpo.vllm_mode=colocate."
            )
