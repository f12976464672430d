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
    pinned = dict(line.split("==") for line in (README.parent / "requirements.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#"))
    assert pinned["gradio"] == card.sdk_version
    assert "HuggingFaceTB/SmolLM-135M-Instruct" in card.models and "mlabonne/smoltldr" in card.datasets


def test_readme_still_opens_with_the_two_commands():
    body = README.read_text().split("---", 2)[2]
    assert body.lstrip().startswith("# GRPO Studio")
    assert body.index("make run") < body.index("make test") < body.index("## Features")
