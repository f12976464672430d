"""The config's help texts, shown where users look: `config --explain` (YAML with comments), the Train tab's
`info=` lines, and docs/configuration.md, generated from the same dataclass metadata so they cannot drift."""

from __future__ import annotations

import dataclasses

import yaml

from .config import SECTIONS, Config

SECTION_HELP = {
    "model": "The model to fine-tune and how it is loaded.",
    "data": "The prompts: where they come from and how each becomes a prompt.",
    "lora": "The LoRA adapter that is trained (the base model stays frozen).",
    "sft": "An optional warm-up: supervised steps on the dataset's reference answers, then GRPO on the same adapter.",
    "grpo": "TRL's GRPOConfig fields; any other GRPOConfig field goes in grpo.extra.",
    "reward": "What the completions are scored on, and what is only watched.",
    "generation": "How the Compare tab, `generate` and `eval` sample answers.",
    "run": "Where the run folder goes, what it continues from, which trackers also log.",
    "speed": "The CPU fast path's levers: each is exact, `auto` picks what helps on this host.",
}


def field_help(key: str) -> str:
    """The help text of a dotted config key (`grpo.learning_rate`); '' for a key without one."""
    section, _, name = key.partition(".")
    for f in dataclasses.fields(getattr(Config(), section)):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""


def _scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def explain(cfg: Config | None = None) -> str:
    """The config as YAML, each field preceded by its help as a comment: what `config --explain` prints."""
    cfg, lines = cfg or Config(), []
    values = cfg.to_dict()
    for section in SECTIONS:
        lines += [f"# {SECTION_HELP[section]}", f"{section}:"]
        for f in dataclasses.fields(getattr(cfg, section)):
            lines.append(f"  # {f.metadata.get('help', '')}")
            lines.append(f"  {f.name}: {_scalar(values[section][f.name])}")
        lines.append("")
    return "\n".join(lines)


def reference_markdown() -> str:
    """docs/configuration.md: every field with its default and help, by section."""
    out = [
        "# Configuration reference",
        "",
        "Generated from the config's own help texts (`python -m grpo_app config --markdown > "
        "docs/configuration.md`); a test fails when this file and the code disagree. The same keys work in a YAML "
        "file (`train --config`), in `--set section.field=value` and in the Train tab.",
        "",
    ]
    defaults = Config().to_dict()
    for section in SECTIONS:
        out += [f"## `{section}`", "", SECTION_HELP[section], "", "| key | default | what it does |", "|---|---|---|"]
        for f in dataclasses.fields(getattr(Config(), section)):
            default = _scalar(defaults[section][f.name]).replace("|", "\\|")
            text = f.metadata.get("help", "").replace("|", "\\|")
            out.append(f"| `{section}.{f.name}` | `{default}` | {text} |")
        out.append("")
    return "\n".join(out)
