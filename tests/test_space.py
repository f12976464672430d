"""The Space configuration at the top of README.md: valid for the Hub, and in step with the pinned gradio."""

from pathlib import Path

import gradio
from huggingface_hub import SpaceCardData
from huggingface_hub.repocard import metadata_load

README = Path(__file__).resolve().parent.parent / "README.md"
COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def test_readme_front_matter_is_a_valid_space_config():
    meta = metadata_load(README)
    assert meta, "README.md must begin with the Space's YAML front matter"
    card = SpaceCardData(**meta)
    assert card.sdk == "gradio" and card.app_file == "app.py"
    assert card.sdk_version == gradio.__version__  # the Space runs the gradio the tests ran
    assert meta["colorFrom"] in COLORS and meta["colorTo"] in COLORS
    assert 0 < len(meta["short_description"]) <= 60 and meta["title"] and meta["emoji"]
    assert (README.parent / card.app_file).is_file()
    pinned = dict(
        line.split("==")
        for line in (README.parent / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert pinned["gradio"] == card.sdk_version
    assert "HuggingFaceTB/SmolLM-135M-Instruct" in card.models and "mlabonne/smoltldr" in card.datasets


def test_readme_still_opens_with_the_two_commands():
    body = README.read_text().split("---", 2)[2]
    assert body.lstrip().startswith("# GRPO Studio")
    assert body.index("make run") < body.index("make test") < body.index("## Features")


def test_on_a_space_the_defaults_are_the_recipes_hub_model_and_dataset(monkeypatch):
    """SPACE_ID switches 'default' to the Hub; the operator's variables override; a run records the pinned id."""
    from grpo_app.config import preset
    from grpo_app.export import _hub_id
    from grpo_app.models import pin_default

    for name in ("SPACE_ID", "GRPO_STUDIO_DEFAULT_MODEL", "GRPO_STUDIO_DEFAULT_DATASET"):
        monkeypatch.delenv(name, raising=False)
    assert pin_default("default") == "default" and preset("quick").data.path == "bundled-mixed"
    assert _hub_id("default") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the offline copy's twin
    monkeypatch.setenv("SPACE_ID", "someone/grpo-studio")
    assert pin_default("default") == "HuggingFaceTB/SmolLM-135M-Instruct"
    assert preset("quick").data.path == "mlabonne/smoltldr"
    assert _hub_id("default") == "HuggingFaceTB/SmolLM-135M-Instruct"
    assert pin_default("me/other") == "me/other"  # only 'default' moves
    monkeypatch.setenv("GRPO_STUDIO_DEFAULT_MODEL", "offline")
    monkeypatch.setenv("GRPO_STUDIO_DEFAULT_DATASET", "bundled")
    assert pin_default("default") == "default" and preset("quick").data.path == "bundled"
