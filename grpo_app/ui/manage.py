"""Run management under "Past runs": rename and delete (asked twice), and settings as a YAML file.

The engine does the work (`runs.rename_run`, `runs.delete_run`, `Config`); these callbacks only ask, call it and
report what happened in one sentence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..config import Config, ConfigError
from ..runs import delete_run, rename_run


def create_run_manager(past: gr.Dropdown, runs_root: str, list_past) -> None:
    """Rename / Delete for the run chosen in `past`; `list_past` refreshes its choices afterwards."""
    with gr.Row():
        new_name = gr.Textbox(label="New name", scale=3, min_width=160, elem_id="rename-box")
        rename_btn = gr.Button("Rename", size="sm", scale=1, elem_id="rename-btn")
        delete_btn = gr.Button("Delete…", size="sm", variant="stop", scale=1, elem_id="delete-btn")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm_btn = gr.Button("Yes, delete it", size="sm", variant="stop", elem_id="delete-confirm-btn")
        cancel_btn = gr.Button("Cancel", size="sm")
    note = gr.Markdown(elem_id="manage-note")

    def rename(path, name):
        try:
            if not path:
                raise ConfigError("Choose a run to rename.")
            target = rename_run(runs_root, Path(path).name, (name or "").strip())
        except ConfigError as e:
            return f"❌ {e}", gr.skip()
        return f"Renamed to **{target.name}**.", gr.update(choices=list_past()["choices"], value=str(target))

    def ask(path):
        if not path:
            return gr.update(visible=False), "", "❌ Choose a run to delete."
        return gr.update(visible=True), f"Delete **{Path(path).name}** and everything in it?", ""

    def delete(path):
        try:
            delete_run(runs_root, Path(path).name)
        except ConfigError as e:
            return gr.update(visible=False), f"❌ {e}", gr.skip()
        return gr.update(visible=False), f"Deleted {Path(path).name}.", gr.update(**list_past(), value=None)

    rename_btn.click(rename, [past, new_name], [note, past])
    delete_btn.click(ask, past, [confirm_row, confirm_text, note])
    cancel_btn.click(lambda: gr.update(visible=False), None, confirm_row)
    confirm_btn.click(delete, past, [confirm_row, note, past])


def config_file(cfg: Config) -> str:
    """The settings as a YAML file to download (the same YAML `train --config` takes)."""
    folder = Path(tempfile.mkdtemp(prefix="grpo-config-"))
    path = folder / "grpo-studio.yaml"
    cfg.save(path)
    return str(path)


def read_config_file(path: str) -> Config:
    """A YAML config from an upload; unknown keys or wrong types are named in the error."""
    return Config.load(path)
