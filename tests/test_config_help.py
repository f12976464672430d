"""The config's help texts reach users: `config --explain`, the Train tab, docs/configuration.md (no drift)."""

import dataclasses
from pathlib import Path

from grpo_app.cli import main
from grpo_app.config import SECTIONS, Config, preset
from grpo_app.config_help import explain, field_help, reference_markdown

REPO = Path(__file__).resolve().parent.parent


def test_explain_is_yaml_with_every_help_and_round_trips():
    for cfg in (Config(), preset("quick"), preset("recipe")):
        text = explain(cfg)
        assert Config.from_yaml(text) == cfg  # the comments change nothing
        for section in SECTIONS:
            for f in dataclasses.fields(getattr(cfg, section)):
                assert f.metadata["help"] and f"  # {f.metadata['help']}\n  {f.name}:" in text, f.name


def test_cli_config_explain(capsys):
    assert main(["config", "--explain", "--preset", "quick"]) == 0
    out = capsys.readouterr().out
    assert "# Peak learning rate.\n  learning_rate: 0.0002" in out


def test_the_configuration_reference_is_up_to_date():
    """docs/configuration.md is generated from the code: regenerate it with
    `python -m grpo_app config --markdown > docs/configuration.md`."""
    assert (REPO / "docs" / "configuration.md").read_text() == reference_markdown()


def test_the_train_tab_shows_the_configs_help():
    from grpo_app.ui import create_ui

    demo = create_ui("/nonexistent-runs")
    for key, widget in demo.train.view.fields.items():
        if key != "reward.table":  # the rewards table explains itself beside it
            assert widget.info == field_help(key) != "", key
