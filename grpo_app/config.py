"""One config tree for a GRPO run: built by the UI or the CLI, resolved once, written into the run folder.

Sections mirror what a user thinks about (model, data, lora, grpo, reward, generation, run). The `grpo`
section uses TRL's `GRPOConfig` field names; any other `GRPOConfig` field can be set through `grpo.extra`
(the CLI's `--set grpo.<field>=...` lands there automatically).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A user-facing configuration problem; its message is shown as is."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class ModelConfig:
    name: str = _f("default", "'default' (offline SmolLM2-135M-Instruct), a Hub id or a local folder.")
    device: str = _f("auto", "auto | cpu | cuda.")
    dtype: str = _f("auto", "Weights dtype: auto (bf16 where the host supports it) | bfloat16 | float32 | float16.")
    attn_implementation: str = _f("auto", "auto (flash_attention_2 on CUDA when installed, else sdpa) | sdpa | eager.")
    trust_remote_code: bool = _f(False, "Allow models that ship their own code.")


@dataclass
class DataConfig:
    path: str = _f("bundled", "'bundled' (short posts shipped in assets/), 'bundled-documents' (long texts), "
                   "'bundled-mixed' (both), a Hub dataset id, or a local "
                   ".jsonl/.json/.csv/.parquet/.txt file.")
    split: str = _f("train", "Split to train on (Hub datasets and the bundled set).")
    prompt_column: str = _f("auto", "Column holding the prompt; 'auto' tries prompt, text, content, messages.")
    instruction: str = _f("", "Optional instruction put before each text, e.g. 'Summarize this post in one "
                          "sentence.'; empty keeps prompts as they are.")
    system_prompt: str = _f("", "Optional system message (chat format only).")
    chat_format: bool = _f(False, "Wrap prompts as chat messages so the model's chat template is applied.")
    max_samples: int = _f(0, "Use at most this many prompts (0 = all).")
    overlong: str = _f("truncate", "What to do with prompts over grpo.max_prompt_length tokens: truncate (keep the "
                       "start) | truncate_left (keep the end, as TRL 0.14 did) | drop.")


@dataclass
class LoraSettings:
    r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA scaling (alpha).")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA path (PEFT's and the recipe's default: 0).")
    target_modules: str = _f("all-linear", "'all-linear' or comma-separated module names (q_proj,v_proj).")


@dataclass
class GRPOSettings:
    learning_rate: float = _f(2e-5, "Peak learning rate.")
    per_device_train_batch_size: int = _f(8, "Completions per device per micro-batch.")
    gradient_accumulation_steps: int = _f(2, "Micro-batches per optimizer step.")
    num_generations: int = _f(8, "Completions sampled per prompt (the group GRPO compares).")
    max_prompt_length: int = _f(512, "Longest prompt in tokens; longer ones follow data.overlong.")
    max_completion_length: int = _f(96, "Longest completion in tokens.")
    temperature: float = _f(1.0, "Sampling temperature while training.")
    top_p: float = _f(1.0, "Nucleus sampling while training.")
    beta: float = _f(0.0, "KL penalty to the base model (0 = none, no reference pass).")
    loss_type: str = _f("dapo", "grpo | dr_grpo | dapo | bnpo ... (TRL's loss_type).")
    scale_rewards: str = _f("group", "group | batch | none: how advantages are scaled.")
    num_train_epochs: float = _f(1.0, "Epochs over the prompts (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = use epochs).")
    optim: str = _f("auto", "auto (adamw_8bit on CUDA with bitsandbytes, else adamw_torch) or a TRL optim name.")
    bf16: bool = _f(True, "bf16 mixed precision where the host supports it.")
    gradient_checkpointing: bool = _f(True, "Trade compute for memory.")
    lr_scheduler_type: str = _f("linear", "linear | cosine | constant ...")
    warmup_steps: float = _f(0, "Learning-rate warm-up: steps (>= 1) or a fraction of all steps (< 1).")
    logging_steps: int = _f(1, "Log metrics every N steps.")
    save_steps: int = _f(25, "Save the adapter and a resumable checkpoint every N steps (0 = only the adapter, at "
                         "the end).")
    save_total_limit: int = _f(2, "Keep the newest K checkpoints (0 = all): bounds disk use.")
    seed: int = _f(42, "Random seed.")
    extra: dict = _f({}, "Any other TRL GRPOConfig field, passed through as is.")


@dataclass
class RewardSettings:
    functions: list = _f(["length"], "Rewards to use: length, one_sentence, grounding, no_repeat, summary, or your "
                         "own as file.py:function (TRL's reward-function convention).")
    weights: list = _f([], "One weight per function (empty = all 1.0).")
    monitor: list = _f(["grounding", "no_repeat", "summary"], "Rewards logged and charted at every step but not "
                       "optimised (weight 0): watch quality while the reward rises.")
    ideal_length: int = _f(50, "Target length in characters for the length reward.")
    regex: str = _f(r"^[^\n]*[.!?]$", "Pattern the one_sentence reward looks for (the whole completion).")


@dataclass
class GenerationSettings:
    max_new_tokens: int = _f(256, "Tokens to generate.")
    temperature: float = _f(0.5, "Sampling temperature.")
    min_p: float = _f(0.1, "Drop tokens below this fraction of the top token's probability (0 = off).")
    top_p: float = _f(1.0, "Nucleus sampling.")
    do_sample: bool = _f(True, "Sample (True) or greedy decode (False).")
    repetition_penalty: float = _f(1.0, "Penalise repeated tokens (1.0 = off).")
    seed: int = _f(0, "Seed so two models see the same random stream.")


@dataclass
class RunSettings:
    dir: str = _f("", "Run folder; empty = <root>/<timestamp>-<model>.")
    root: str = _f("runs", "Where new run folders are created.")
    resume_from: str = _f("", "Adapter folder to continue training from.")
    report_to: str = _f("none", "Experiment trackers besides the app's own charts: none | trackio | tensorboard | "
                        "wandb (offline without WANDB_API_KEY), comma-separated for several.")


@dataclass
class SpeedSettings:
    logits_head: str = _f("auto", "Log-probs with the LM head on real completion tokens only and one chunked "
                          "log-softmax, instead of TRL's chunked kernel: auto (on for CPU) | on | off.")
    merged_generation: str = _f("auto", "Generate from a merged copy of base + LoRA (an extra copy of the "
                                "weights): auto (on for CPU) | on | off.")
    skip_checkpointing: str = _f("auto", "Turn gradient checkpointing off where memory allows (it repeats the "
                                 "forward pass): auto (CPU and < 1B parameters) | on | off.")
    shared_prefix: str = _f("auto", "Forward each distinct prompt once per batch and share its KV cache with its "
                            "num_generations completions in training (needs logits_head): auto (on for CPU) | on | "
                            "off.")
    fast_decode: str = _f("auto", "Sample completions with GRPO Studio's decoder (prompt prefilled once, preallocated "
                          "KV cache, exact cheap sampling; needs merged_generation) instead of generate(): auto (on "
                          "for CPU) | on | off.")
    grouped_attention: str = _f("auto", "Attention where each K/V head serves its query heads in place, instead of "
                                "sdpa (slow on a CPU for one query or in backward): auto (on for CPU) | on | off.")
    threads: int = _f(0, "torch CPU threads (0 = torch's default).")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    run: RunSettings = field(default_factory=RunSettings)
    speed: SpeedSettings = field(default_factory=SpeedSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | Path) -> None:
        from .files import write_atomic

        write_atomic(path, self.to_yaml())

    @classmethod
    def from_dict(cls, data: dict) -> Config:
        cfg = cls()
        for section, values in (data or {}).items():
            if not hasattr(cfg, section):
                raise ConfigError(f"Unknown config section '{section}'. Known: {', '.join(SECTIONS)}.")
            for key, value in (values or {}).items():
                set_value(cfg, f"{section}.{key}", value)
        return cfg

    @classmethod
    def from_yaml(cls, text: str) -> Config:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"The config is not valid YAML: {e}") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError("The config file must hold a mapping of sections (model, data, grpo, ...).")
        return cls.from_dict(data or {})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file not found: {p}")
        return cls.from_yaml(p.read_text())


SECTIONS = [f.name for f in dataclasses.fields(Config)]


def _grpo_config_fields() -> set[str]:
    from trl import GRPOConfig

    return {f.name for f in dataclasses.fields(GRPOConfig)}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a YAML/CLI value into the field's type, with a message that names the key."""
    kind = typing.get_origin(annotation) or annotation
    if isinstance(annotation, str):
        kind = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}.get(annotation)
    if isinstance(kind, types.UnionType):
        kind = None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return "" if value is None else str(value)
        if kind is list:
            if isinstance(value, str):
                return [yaml.safe_load(v.strip()) for v in value.split(",") if v.strip()]
            return list(value)
        if kind is dict:
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}.") from None
    return value


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (`grpo.learning_rate`); unknown GRPOConfig fields go to `grpo.extra`."""
    section_name, _, name = key.partition(".")
    section = getattr(cfg, section_name, None) if section_name in SECTIONS else None
    if section is None or not name:
        raise ConfigError(f"Unknown setting '{key}'. Use <section>.<field> with section in {', '.join(SECTIONS)}.")
    fields = {f.name: f for f in dataclasses.fields(section)}
    if name in fields:
        setattr(section, name, _coerce(value, fields[name].type, key))
    elif section_name == "grpo" and name in _grpo_config_fields():
        section.extra[name] = value
    else:
        raise ConfigError(f"Unknown setting '{key}'. Fields of '{section_name}': {', '.join(fields)}.")


def parse_set(pairs: list[str]) -> list[tuple[str, Any]]:
    """`KEY=VALUE` strings from the CLI; values are read as YAML scalars (so 2e-5, true, 8 get their types)."""
    out = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def validate(cfg: Config) -> Config:
    """Check what TRL would reject later (or never), with messages a user can act on."""
    g, problems = cfg.grpo, []
    if g.num_generations < 2:
        problems.append("grpo.num_generations must be at least 2: GRPO compares completions within a group.")
    if g.learning_rate <= 0:
        problems.append("grpo.learning_rate must be positive.")
    if g.save_steps < 0 or g.save_total_limit < 0:
        problems.append("grpo.save_steps and grpo.save_total_limit must be >= 0.")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_completion_length",
                 "max_prompt_length", "logging_steps"):
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
    if g.temperature <= 0 or cfg.generation.temperature <= 0:
        problems.append("temperature must be positive (use generation.do_sample=false for greedy decoding).")
    if cfg.lora.r < 1 or cfg.lora.lora_alpha <= 0:
        problems.append("lora.r and lora.lora_alpha must be positive.")
    if not 0 <= cfg.lora.lora_dropout < 1:
        problems.append("lora.lora_dropout must be in [0, 1).")
    if cfg.data.overlong not in ("truncate", "truncate_left", "drop"):
        problems.append("data.overlong must be 'truncate', 'truncate_left' or 'drop'.")
    from .rewards import BUILTIN_REWARDS, is_known

    unknown = [f for f in cfg.reward.functions + cfg.reward.monitor if not is_known(f)]
    if not cfg.reward.functions:
        problems.append("Choose at least one reward function.")
    if unknown:
        problems.append(f"Unknown reward function(s) {unknown}. Built-in: {', '.join(BUILTIN_REWARDS)}; "
                        "or your own as file.py:function.")
    if cfg.reward.weights and len(cfg.reward.weights) != len(cfg.reward.functions):
        problems.append(f"reward.weights has {len(cfg.reward.weights)} values for "
                        f"{len(cfg.reward.functions)} reward functions.")
    if cfg.generation.max_new_tokens < 1:
        problems.append("generation.max_new_tokens must be at least 1.")
    for name in ("logits_head", "merged_generation", "skip_checkpointing", "shared_prefix", "fast_decode",
                 "grouped_attention"):
        if getattr(cfg.speed, name) not in ("auto", "on", "off"):
            problems.append(f"speed.{name} must be auto, on or off.")
    problems += _tracker_problems(cfg.run.report_to)
    if problems:
        raise ConfigError(" ".join(problems))
    return cfg


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


def preset(name: str) -> Config:
    """`recipe`: the Hugging Face reasoning course's values, unchanged. `quick`: learns visibly on a 2-core CPU."""
    from .presets import PRESETS

    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'. Available: {', '.join(PRESETS)}.")
    return Config.from_dict(PRESETS[name])


def load_config(preset_name: str | None = None, path: str | None = None,
                overrides: list[tuple[str, Any]] | None = None) -> Config:
    """Preset, then file, then overrides: the same order for the CLI and the UI."""
    cfg = preset(preset_name) if preset_name else Config()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file not found: {p}")
        Config.from_yaml(p.read_text())  # validates the whole file first
        for section, values in (yaml.safe_load(p.read_text()) or {}).items():
            for key, value in (values or {}).items():
                set_value(cfg, f"{section}.{key}", value)
    for key, value in overrides or []:
        set_value(cfg, key, value)
    return cfg
