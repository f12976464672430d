"""One config tree for a GRPO run: built by the UI or the CLI, resolved once, written into the run folder.

Sections mirror what a user thinks about (model, data, lora, sft, grpo, reward, generation, run, speed; their
fields are in `settings.py`). The `grpo` section uses TRL's `GRPOConfig` field names; any other `GRPOConfig` field
can be set through `grpo.extra` (the CLI's `--set grpo.<field>=...` lands there automatically).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .coerce import coerce
from .errors import ConfigError
from .settings import (
    DataConfig,
    GenerationSettings,
    GRPOSettings,
    LoraSettings,
    ModelConfig,
    RewardSettings,
    RunSettings,
    SFTSettings,
    SpeedSettings,
)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
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
        """A config from parsed YAML/JSON: a mapping of known sections, each a mapping of its fields. Anything else
        is a ConfigError naming the offending key, not an AttributeError from deep inside."""
        import reprlib

        def shown(v: Any) -> str:
            try:
                text = reprlib.repr(v)
            except ValueError:  # an int over 4300 digits has no repr
                return f"a {type(v).__name__} too large to show"
            return text if len(text) <= 120 else text[:117] + "..."

        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"A config is a mapping of sections ({', '.join(SECTIONS)}), got {shown(data)}.")
        cfg = cls()
        for section, values in data.items():
            if not isinstance(section, str) or section not in SECTIONS:
                raise ConfigError(f"Unknown config section {shown(section)}. Known: {', '.join(SECTIONS)}.")
            if values is None:  # an empty section (`model:` in YAML)
                continue
            fields = ", ".join(f.name for f in dataclasses.fields(getattr(cfg, section)))
            if not isinstance(values, dict):
                raise ConfigError(f"{section}: expected a mapping of its fields ({fields}), got {shown(values)}.")
            for key, value in values.items():
                if not isinstance(key, str):
                    raise ConfigError(f"{section}: field names are text ({fields}), got {shown(key)}.")
                set_value(cfg, f"{section}.{key}", value)
        return cfg

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Config:
        """A config from YAML text (bytes: UTF-8). Whatever PyYAML raises on bad input is one sentence: YAMLError,
        but also ValueError (a date like 2024-13-45, an int of 5000 digits) and RecursionError (deep nesting)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"The config is not UTF-8 text (byte {e.object[e.start]:#04x} at position {e.start})."
                ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = " ".join(str(e.problem or e.context or type(e).__name__).split())
            raise ConfigError(f"The config is not valid YAML: {problem}{where}.") from None
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
            problem = (str(e).strip().splitlines() or [type(e).__name__])[0].split(";")[0]
            raise ConfigError(f"The config is not valid YAML: {problem}.") from None
        except RecursionError:
            raise ConfigError("The config is not valid YAML: it is nested too deeply.") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError("The config file must hold a mapping of sections (model, data, grpo, ...).")
        return cls.from_dict(data or {})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """A config file; a folder, an unreadable or a non-UTF-8 file is one sentence naming it, not an OSError."""
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"{p} is a folder: give the config file (.yaml) itself.")
        if not p.is_file():
            raise ConfigError(f"Config file not found: {p}")
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except OSError as e:
            raise ConfigError(f"Could not read the config file {p}: {e.strerror or e}.") from None
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"The config file {p} is not UTF-8 text (byte {e.object[e.start]:#04x} at position {e.start})."
            ) from None
        return cls.from_yaml(text)


SECTIONS = [f.name for f in dataclasses.fields(Config)]


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key (`grpo.learning_rate`); other GRPOConfig fields go to `grpo.extra`, typed as TRL declares
    them, so that a config that loads here also builds a GRPOConfig later."""
    if not isinstance(key, str):
        raise ConfigError(f"A setting is named <section>.<field> in text, got a {type(key).__name__}.")
    section_name, _, name = key.partition(".")
    section = getattr(cfg, section_name) if section_name in SECTIONS else None
    if section is None or not name:
        raise ConfigError(f"Unknown setting {key!r}. Use <section>.<field> with section in {', '.join(SECTIONS)}.")
    fields = {f.name: f for f in dataclasses.fields(section)}
    if name in fields and key != "grpo.extra":
        setattr(section, name, coerce(value, fields[name].type, key))
        return
    if section_name == "grpo":
        from trl import GRPOConfig

        trl_fields = {f.name: f.type for f in dataclasses.fields(GRPOConfig)}
        if name == "extra":  # the whole mapping (a config file's grpo.extra): each entry is checked as --set would
            entries = {} if value is None else coerce(value, "dict", key)
            unknown = [k for k in entries if k not in trl_fields]
            if unknown:
                raise ConfigError(
                    f"Unknown setting {'grpo.extra.' + unknown[0]!r}: grpo.extra holds TRL GRPOConfig fields only."
                )
            section.extra = {k: coerce(v, trl_fields[k], f"grpo.extra.{k}") for k, v in entries.items()}
            return
        if name in trl_fields:
            section.extra[name] = coerce(value, trl_fields[name], key)
            return
    raise ConfigError(f"Unknown setting {key!r}. Fields of '{section_name}': {', '.join(fields)}.")


def parse_set(pairs: list[str]) -> list[tuple[str, Any]]:
    """`KEY=VALUE` strings from the CLI; values are read as YAML scalars (so 2e-5, true, 8 get their types), and a
    value YAML cannot read (`a: b: c`, `2024-13-45`, a 5000-digit number) stays the text it was."""
    out = []
    for pair in pairs:
        if not isinstance(pair, str):
            raise ConfigError(f"--set expects KEY=VALUE text, got a {type(pair).__name__}.")
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            shown = pair if len(pair) <= 80 else pair[:80] + "..."
            raise ConfigError(f"--set expects KEY=VALUE, got {shown!r}.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError, RecursionError):
            value = raw
        out.append((key.strip(), value))
    return out


def preset(name: str) -> Config:
    """`recipe`: the Hugging Face reasoning course's values, unchanged. `quick`: learns visibly on a 2-core CPU."""
    from .presets import PRESETS, default_dataset

    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'. Available: {', '.join(PRESETS)}.")
    cfg = Config.from_dict(PRESETS[name])
    if name == "quick":
        cfg.data.path = default_dataset()
    return cfg


def load_config(
    preset_name: str | None = None, path: str | None = None, overrides: list[tuple[str, Any]] | None = None
) -> Config:
    """Preset, then file, then overrides: the same order for the CLI and the UI."""
    cfg = preset(preset_name) if preset_name else Config()
    if path:
        Config.load(path)  # the whole file first: missing, unreadable, not YAML or not a config is one sentence
        named = yaml.safe_load(Path(path).read_bytes().decode("utf-8-sig")) or {}
        for section, values in named.items():  # then only what the file names goes over the preset
            for key, value in (values or {}).items():
                set_value(cfg, f"{section}.{key}", value)
    for key, value in overrides or []:
        set_value(cfg, key, value)
    return cfg
