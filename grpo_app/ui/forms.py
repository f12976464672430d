"""Widget values <-> Config, without Gradio: the one pure, tested step between the page and the engine.

Every form field is named by its dotted config key (`grpo.learning_rate`), so the form, the YAML and
the CLI's `--set` speak the same language.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..checks import validate
from ..config import Config, ConfigError, set_value

# The fields the Train tab shows, in order. Keys are dotted config paths.
FORM_KEYS = [
    "model.name",
    "data.path",
    "data.split",
    "data.prompt_column",
    "data.instruction",
    "data.chat_format",
    "data.max_samples",
    "data.overlong",
    "reward.table",
    "reward.ideal_length",
    "reward.regex",
    "reward.length_unit",
    "reward.answer_column",
    "reward.pattern",
    "reward.json_keys",
    "reward.json_schema",
    "reward.words_column",
    "reward.overlong_buffer",
    "reward.reward_model",
    "lora.r",
    "lora.lora_alpha",
    "lora.lora_dropout",
    "lora.target_modules",
    "sft.steps",
    "sft.learning_rate",
    "sft.batch_size",
    "sft.column",
    "sft.extra_data",
    "grpo.learning_rate",
    "grpo.per_device_train_batch_size",
    "grpo.gradient_accumulation_steps",
    "grpo.num_generations",
    "grpo.max_prompt_length",
    "grpo.max_completion_length",
    "grpo.max_steps",
    "grpo.num_train_epochs",
    "grpo.temperature",
    "grpo.top_p",
    "grpo.beta",
    "grpo.loss_type",
    "grpo.scale_rewards",
    "grpo.optim",
    "grpo.bf16",
    "grpo.gradient_checkpointing",
    "grpo.lr_scheduler_type",
    "grpo.warmup_steps",
    "grpo.save_steps",
    "grpo.seed",
    "grpo.save_total_limit",
    "run.report_to",
    "run.resume_from",
    "run.processes",
    "run.eval_steps",
    "run.eval_size",
    "run.guard",
    "run.eval_prompts",
    "grpo.use_vllm",
    "grpo.vllm_mode",
    "grpo.vllm_server_base_url",
    "grpo.vllm_gpu_memory_utilization",
]


REWARD_TABLE = "reward.table"  # one widget for reward.functions, reward.weights and reward.monitor
REWARD_HEADERS = ["reward", "weight", "watch"]


def reward_rows(cfg: Config) -> list[list]:
    """One row per reward, its weight beside it (0 = not optimised) and whether it is watched: the built-ins in
    catalogue order, then the config's own (custom code, old names). A weight can never move to another reward."""
    from ..rewards import BUILTIN_REWARDS

    r = cfg.reward
    weights = dict(zip(r.functions, [float(w) for w in r.weights] or [1.0] * len(r.functions), strict=True))
    names = list(dict.fromkeys([*BUILTIN_REWARDS, *r.functions, *r.monitor]))
    return [[name, weights.get(name, 0.0), name in r.monitor and name not in weights] for name in names]


def _cell_weight(name: str, value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0.0
    if isinstance(value, float) and value != value:  # an emptied number cell comes back as NaN
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"The weight of reward '{name}' must be a number, got {value!r}.") from None


def _cell_flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "✓", "x")
    return bool(value) and value == value  # NaN is no tick


def apply_reward_rows(cfg: Config, rows: Any) -> None:
    """The reward table into the config: rows with a weight are optimised (in table order), rows with a weight of
    0 and a tick are watched, the rest are off."""
    if hasattr(rows, "values") and hasattr(rows, "columns"):  # the pandas frame Gradio hands over
        rows = rows.values.tolist()
    elif isinstance(rows, dict):  # the widget's own value ({"headers": ..., "data": ...})
        rows = rows.get("data", [])
    functions, weights, monitor = [], [], []
    for row in rows or []:
        cells = list(row) + [None] * (3 - len(row))
        name = str(cells[0] if cells[0] is not None else "").strip()
        if not name or name == "nan":
            continue
        weight = _cell_weight(name, cells[1])
        if weight:
            functions.append(name)
            weights.append(weight)
        elif _cell_flag(cells[2]):
            monitor.append(name)
    set_value(cfg, "reward.functions", functions)
    set_value(cfg, "reward.weights", weights)
    set_value(cfg, "reward.monitor", monitor)


def get_value(cfg: Config, key: str) -> Any:
    if key == REWARD_TABLE:
        return reward_rows(cfg)
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def form_to_config(values: dict[str, Any], base: Config | None = None) -> Config:
    """A validated Config from the form's values; blank fields keep the base (default) value."""
    cfg = Config.from_dict(base.to_dict()) if base else Config()
    for key, value in values.items():
        if key == REWARD_TABLE:
            apply_reward_rows(cfg, value)
            continue
        if key == "reward.weights":
            value = [] if _blank(value) else value
        elif _blank(value) and key not in ("data.instruction", "run.resume_from", "run.eval_prompts"):
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


def config_to_values(cfg: Config, keys: list[str] = FORM_KEYS) -> dict[str, Any]:
    """The form's values for a config, by key."""
    return dict(zip(keys, config_to_form(cfg, keys), strict=True))


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


ENGINES = {
    "ddp": "one model copy per GPU",
    "deepspeed_zero2": "optimizer states sharded",
    "deepspeed_zero3": "weights sharded too",
    "fsdp": "PyTorch's sharding",
}


def cluster_commands(config_file: str = "run.yaml") -> str:
    """The same run on several GPUs: save the settings as `config_file`, then one accelerate command per engine."""
    lines = [f"# Several GPUs: save these settings as {config_file} (Download settings), then one of:"]
    for name, what in ENGINES.items():
        lines.append(
            f"accelerate launch --config_file configs/{name}.yaml -m grpo_app train --config {config_file} "
            f"--set run.dir=runs/cluster  # {what}"
        )
    return "\n".join(lines)
