"""Widget values <-> Config, without Gradio: the one pure, tested step between the page and the engine.

Every form field is named by its dotted config key (`grpo.learning_rate`), so the form, the YAML and
the CLI's `--set` speak the same language.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..checks import validate
from ..config import Config, set_value

# The fields the Train tab shows, in order. Keys are dotted config paths.
FORM_KEYS = [
    "model.name",
    "data.path", "data.split", "data.prompt_column", "data.instruction", "data.chat_format", "data.max_samples",
    "data.overlong",
    "reward.functions", "reward.weights", "reward.monitor", "reward.ideal_length", "reward.regex",
    "lora.r", "lora.lora_alpha", "lora.lora_dropout", "lora.target_modules",
    "grpo.learning_rate", "grpo.per_device_train_batch_size", "grpo.gradient_accumulation_steps",
    "grpo.num_generations", "grpo.max_prompt_length", "grpo.max_completion_length", "grpo.max_steps",
    "grpo.num_train_epochs",
    "grpo.temperature", "grpo.top_p", "grpo.beta", "grpo.loss_type", "grpo.scale_rewards", "grpo.optim",
    "grpo.bf16", "grpo.gradient_checkpointing", "grpo.lr_scheduler_type", "grpo.warmup_steps", "grpo.save_steps",
    "grpo.seed", "grpo.save_total_limit", "run.report_to", "run.resume_from",
    "grpo.use_vllm", "grpo.vllm_mode", "grpo.vllm_server_base_url", "grpo.vllm_gpu_memory_utilization",
]


def get_value(cfg: Config, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def form_to_config(values: dict[str, Any], base: Config | None = None) -> Config:
    """A validated Config from the form's values; blank fields keep the base (default) value."""
    cfg = Config.from_dict(base.to_dict()) if base else Config()
    for key, value in values.items():
        if key == "reward.weights":
            value = [] if _blank(value) else value
        elif _blank(value) and key not in ("data.instruction", "run.resume_from"):
            continue
        if isinstance(value, float) and value.is_integer() and isinstance(get_value(cfg, key), int):
            value = int(value)  # gr.Number gives floats
        set_value(cfg, key, value)
    return validate(cfg)


def config_to_form(cfg: Config, keys: list[str] = FORM_KEYS) -> list[Any]:
    """Widget values for a config (presets, reopened runs), in the order of `keys`."""
    out = []
    for key in keys:
        value = get_value(cfg, key)
        if key == "reward.weights":
            value = ", ".join(f"{w:g}" for w in value)
        out.append(value)
    return out


def changed_settings(cfg: Config, base: Config | None = None) -> list[tuple[str, Any]]:
    """(key, value) pairs where cfg differs from base: what a CLI command must state."""
    base_dict, out = (base or Config()).to_dict(), []
    for section, values in cfg.to_dict().items():
        for name, value in values.items():
            if section == "run" and name == "dir":
                continue
            if name == "extra":
                out += [(f"grpo.{k}", v) for k, v in value.items()]
            elif base_dict[section][name] != value:
                out.append((f"{section}.{name}", value))
    return out


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def cli_command(cfg: Config) -> str:
    """The exact command that reproduces this run headless."""
    pairs = [f"{k}={_cli_value(v)}" for k, v in changed_settings(cfg)]
    cmd = "python -m grpo_app train"
    if pairs:
        cmd += " --set " + " ".join(shlex.quote(p) for p in pairs)
    return cmd


ENGINES = {"ddp": "one model copy per GPU", "deepspeed_zero2": "optimizer states sharded",
           "deepspeed_zero3": "weights sharded too", "fsdp": "PyTorch's sharding"}


def cluster_commands(config_file: str = "run.yaml") -> str:
    """The same run on several GPUs: save the settings as `config_file`, then one accelerate command per engine."""
    lines = [f"# Several GPUs: save these settings as {config_file} (Download settings), then one of:"]
    for name, what in ENGINES.items():
        lines.append(f"accelerate launch --config_file configs/{name}.yaml -m grpo_app train --config {config_file} "
                     f"--set run.dir=runs/cluster  # {what}")
    return "\n".join(lines)
