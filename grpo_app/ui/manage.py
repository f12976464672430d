"""Run management under "Past runs": rename and delete (asked twice), and settings as a YAML file.

The engine does the work (`runs.rename_run`, `runs.delete_run`, `Config`); these callbacks only ask, call it and
report what happened in one sentence.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ..access import Policy
from ..config import Config, ConfigError
from ..runs import delete_run, rename_run


def create_run_manager(past: gr.Dropdown, runs_root: str, list_past, policy: Policy, on_rename=None) -> dict:
    """Rename / Delete for the run chosen in `past`; `list_past` refreshes its choices afterwards, `on_rename(old,
    new)` tells the live view a run folder moved."""
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
            policy.check_manage()
            if not path:
                raise ConfigError("Choose a run to rename.")
            target = rename_run(runs_root, Path(path).name, (name or "").strip())
        except ConfigError as e:
            return f"❌ {e}", gr.skip()
        if on_rename:
            on_rename(Path(path), target)
        return f"Renamed to **{target.name}**.", gr.update(choices=list_past()["choices"], value=str(target))

    def ask(path):
        try:
            policy.check_manage()
        except ConfigError as e:
            return gr.update(visible=False), "", f"❌ {e}"
        if not path:
            return gr.update(visible=False), "", "❌ Choose a run to delete."
        return gr.update(visible=True), f"Delete **{Path(path).name}** and everything in it?", ""

    def delete(path):
        try:
            policy.check_manage()
            delete_run(runs_root, Path(path or "").name)
        except ConfigError as e:
            return gr.update(visible=False), f"❌ {e}", gr.skip()
        return gr.update(visible=False), f"Deleted {Path(path).name}.", gr.update(**list_past(), value=None)

    rename_btn.click(rename, [past, new_name], [note, past])
    delete_btn.click(ask, past, [confirm_row, confirm_text, note])
    cancel_btn.click(lambda: gr.update(visible=False), None, confirm_row)
    confirm_btn.click(delete, past, [confirm_row, note, past])
    return {"rename": rename, "ask": ask, "delete": delete}


def config_file(cfg: Config) -> str:
    """The settings as a YAML file to download (the same YAML `train --config` takes)."""
    folder = Path(tempfile.mkdtemp(prefix="grpo-config-"))
    path = folder / "grpo-studio.yaml"
    cfg.save(path)
    return str(path)


def read_config_file(path: str) -> Config:
    """A YAML config from an upload; unknown keys or wrong types are named in the error."""
    return Config.load(path)


def create_export_panel(past: gr.Dropdown, policy: Policy) -> dict:
    """Export the run chosen in `past` (adapter or merged, with a model card) and push it to the Hub.

    The token goes from the password box to `push_folder` and nowhere else: it is never returned to the page,
    and the box is cleared after each push."""
    with gr.Accordion("Export / push to the Hub", open=False):
        with gr.Row():
            merge = gr.Checkbox(
                label="Merge the adapter into the model",
                value=True,
                elem_id="export-merge",
                info="off: the LoRA adapter alone (small; needs PEFT to load)",
            )
            out = gr.Textbox(
                label="Folder", placeholder="default: <run>/merged or <run>/export", scale=2, elem_id="export-out"
            )
        with gr.Row():
            which = gr.Radio(
                ["last", "best"], value="last", label="Adapter", info="best: top held-out score", elem_id="export-which"
            )
            gguf = gr.Radio(
                ["none", "f16", "q8_0"],
                value="none",
                label="Also as GGUF (llama.cpp, Ollama)",
                info="merges; q8_0 is about half the size",
                elem_id="export-gguf",
            )
        export_btn = gr.Button("Export", size="sm", elem_id="export-btn")
        with gr.Row():
            repo = gr.Textbox(label="Hub repo id", placeholder="user/SmolGRPO-135M", scale=2, elem_id="push-repo")
            private = gr.Checkbox(label="Private", value=False)
            token = gr.Textbox(label="Token (or HF_TOKEN)", type="password", scale=2, elem_id="push-token")
        push_btn = gr.Button("Export and push", size="sm", elem_id="push-btn")
        result = gr.Markdown(elem_id="export-result")

    def do_export(path, merge, out, which="last", gguf="none"):
        from ..export import export_run

        policy.check_export_folder(out)
        kind = "" if gguf in (None, "none") else gguf
        folder = (out or "").strip() or None
        return export_run(policy.run_folder(path), merge=bool(merge), out=folder, which=which or "last", gguf=kind)

    def export(path, merge, out, which="last", gguf="none"):
        try:
            folder = do_export(path, merge, out, which, gguf)
        except ConfigError as e:
            return f"❌ {e}"
        extra = f", `model-{gguf}.gguf`" if gguf not in (None, "none") else ""
        return f"Exported to `{folder}` (model card `README.md`, `reward.png`{extra})."

    def push(path, merge, out, repo, private, token, which="last", gguf="none"):
        from ..export import push_folder

        try:
            folder = do_export(path, merge, out, which, gguf)
            url = push_folder(folder, (repo or "").strip(), token=token or None, private=bool(private))
        except ConfigError as e:
            return f"❌ {e}", ""  # the box is emptied whatever happened: the token is never kept on the page
        return f"Pushed `{folder}` to [{repo}]({url}).", ""

    export_btn.click(export, [past, merge, out, which, gguf], result)
    push_btn.click(push, [past, merge, out, repo, private, token, which, gguf], [result, token])
    return {"export": export, "push": push}
