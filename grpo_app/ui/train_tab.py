"""The Train tab's widgets: Start, Stop and the run's status across the top (near at hand on a phone too),
settings on the left, the live view on the right. What the widgets do is in `train_handlers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import torch

from ..access import Policy
from ..config import Config, preset
from ..jobs import JobSnapshot
from ..presets import PRESETS
from ..registry import JobRegistry
from ..reward_editor import EXAMPLE
from . import pulse
from .forms import REWARD_TABLE, config_to_values
from .live import status_markdown
from .manage import create_export_panel, create_run_manager
from .train_form import settings_fields
from .train_handlers import TrainHandlers
from .train_view import INLINE, TrainView


def _view(registry: JobRegistry, default: Config, visitor: gr.State) -> TrainView:
    with gr.Row(elem_id="train-bar", equal_height=False):
        with gr.Column(scale=2, min_width=300):
            preset_radio = gr.Radio(
                list(PRESETS),
                value=default.name,
                label="Preset",
                info="quick: summaries, learns on a laptop CPU in minutes. recipe: the Hugging Face course's "
                "settings (needs the Hub; a GPU is best). reason: think, then answer word problems. extract: a "
                "text to JSON.",
            )
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="start-btn")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-btn")
        with gr.Column(scale=3, min_width=300):
            status = gr.Markdown(status_markdown(JobSnapshot()), elem_id="train-status")
            progress = gr.HTML(elem_id="train-progress")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            form_note = gr.Markdown(elem_id="form-note")
            fields, uploads, data_info, data_preview = settings_fields(config_to_values(default.cfg))
            with gr.Accordion("Test the rewards before training", open=False):
                gr.Markdown(
                    "Samples a group of answers for 4 dataset prompts, as training would, and scores them beside "
                    "lazy answers cut from each prompt (its title, its first sentence, the instruction, padding, "
                    "a pleasantry...). A lazy answer that scores like a real one is how the model will game it.",
                    elem_classes="gs-hint",
                )
                bench_btn = gr.Button("Test the rewards", size="sm", elem_id="reward-bench-btn")
                bench_out = gr.Markdown(elem_id="reward-bench")
            with gr.Accordion("Write a reward", open=False):
                gr.Markdown(
                    "A Python function in TRL's convention: one float per completion; the dataset's columns arrive "
                    "by name in `kwargs`. Save checks it on real prompts in a separate process, then adds it to "
                    "the rewards table.",
                    elem_classes="gs-hint",
                )
                reward_name = gr.Textbox(value="my_reward", label="Function name", elem_id="reward-name")
                reward_code = gr.Code(value=EXAMPLE, language="python", label="Code", elem_id="reward-code")
                reward_save = gr.Button("Save and check", size="sm", elem_id="reward-save-btn")
                reward_result = gr.Markdown(elem_id="reward-result")
            with gr.Accordion("Past runs", open=False):
                with gr.Row():
                    past = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="past-run")
                    past_refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
                with gr.Row():
                    open_btn = gr.Button("Open (settings + charts)", size="sm", elem_id="open-run-btn")
                    resume_btn = gr.Button("Resume", size="sm", elem_id="resume-run-btn")
                    continue_btn = gr.Button("Continue from its adapter", size="sm")
            with gr.Accordion("Config and CLI command", open=False):
                with gr.Row():
                    show = gr.Button("Show config", size="sm")
                    download = gr.Button("Download settings (YAML)", size="sm", elem_id="config-download")
                    config_upload = gr.UploadButton(
                        "Load settings (YAML)",
                        file_types=[".yaml", ".yml"],
                        type="filepath",
                        size="sm",
                        elem_id="config-upload",
                    )
                config_file = gr.File(
                    label="Settings (the YAML `train --config` takes)",
                    visible=False,
                    interactive=False,
                    elem_id="config-file",
                )
                yaml_view = gr.Code(language="yaml", label="config.yaml", interactive=False)
                cli_view = gr.Code(language="shell", label="Reproduce headless", interactive=False)
        with gr.Column(scale=3, min_width=340):
            warning = gr.Markdown(elem_id="hacking-warning", elem_classes="gs-warning")
            plots = {}
            with gr.Row():
                plots["reward"] = gr.Plot(elem_id="plot-reward", show_label=False)
                plots["quality"] = gr.Plot(elem_id="plot-quality", show_label=False)
            with gr.Row():
                plots["loss"] = gr.Plot(elem_id="plot-loss", show_label=False)
                plots["length"] = gr.Plot(elem_id="plot-length", show_label=False)
            plots["health"] = gr.Plot(elem_id="plot-health", show_label=False)
            completions_caption = gr.Markdown(elem_id="completions-caption")
            completions = gr.Dataframe(wrap=True, max_height=420, elem_id="completions-table")
            with gr.Accordion("Group inspector: what GRPO pushed up and down at a step", open=False):
                with gr.Row():
                    inspect_step = gr.Number(
                        0, label="Step (0 = the latest)", precision=0, minimum=0, min_width=120, elem_id="inspect-step"
                    )
                    inspect_btn = gr.Button("Show the groups", size="sm", elem_id="inspect-btn")
                inspect_note = gr.Markdown(elem_id="inspect-note")
                inspect_table = gr.Dataframe(wrap=True, max_height=420, elem_id="inspect-table")
            with gr.Accordion("Log", open=False):
                log = gr.Textbox(lines=10, max_lines=20, show_label=False, elem_id="train-log")
            with gr.Accordion("Compare runs", open=False, elem_id="compare-runs"):
                with gr.Row():
                    compare_pick = gr.Dropdown(
                        label="Runs", choices=[], multiselect=True, scale=4, elem_id="compare-runs-pick"
                    )
                    compare_btn = gr.Button("Overlay", size="sm", scale=0, min_width=90, elem_id="compare-runs-btn")
                compare_note = gr.Markdown(elem_id="compare-runs-note")
                compare_plot = gr.Plot(show_label=False, elem_id="compare-runs-plot")
                compare_table = gr.Dataframe(wrap=True, elem_id="compare-runs-table")
    return TrainView(
        preset_radio,
        start,
        stop,
        status,
        progress,
        fields,
        uploads,
        data_info,
        data_preview,
        form_note,
        past,
        yaml_view,
        cli_view,
        config_file,
        warning,
        plots,
        completions_caption,
        completions,
        log,
        gr.State((None, -1, -1)),
        visitor,
        {
            "past_refresh": past_refresh,
            "open": open_btn,
            "resume": resume_btn,
            "continue": continue_btn,
            "show": show,
            "download": download,
            "config_upload": config_upload,
            "bench": bench_btn,
            "bench_out": bench_out,
            "reward_name": reward_name,
            "reward_code": reward_code,
            "reward_save": reward_save,
            "reward_result": reward_result,
            "inspect_step": inspect_step,
            "inspect": inspect_btn,
            "inspect_note": inspect_note,
            "inspect_table": inspect_table,
            "compare_pick": compare_pick,
            "compare": compare_btn,
            "compare_note": compare_note,
            "compare_plot": compare_plot,
            "compare_table": compare_table,
        },
    )


@dataclass
class _Default:
    name: str
    cfg: Config


def create_train_tab(
    registry: JobRegistry, runs_root: str = "runs", policy: Policy | None = None, visitor: gr.State | None = None
) -> TrainHandlers:
    """The tab and its wiring; returns the handlers (with `.view`), which tests call as Gradio does."""
    policy = policy or Policy(runs_root=runs_root)
    name = "recipe" if torch.cuda.is_available() else "quick"
    view = _view(registry, _Default(name, preset(name)), visitor if visitor is not None else gr.State(""))
    h = TrainHandlers(view, registry, runs_root, policy)
    v, b, form = view, view.buttons, set(view.form)
    h.manage = {
        **create_run_manager(v.past, runs_root, h.past_choices, policy, on_rename=registry.renamed),
        **create_export_panel(v.past, policy),
    }
    data_in = {v.fields[k] for k in ("data.path", "data.split", "data.prompt_column", REWARD_TABLE)}
    data_out = [v.data_info, v.data_preview, v.fields["data.prompt_column"]]
    v.pending.update({name: gr.State(None) for name in v.parts if name not in INLINE})
    v.stage = gr.HTML("", visible="hidden", elem_id=pulse.STAGE_ID)
    inline = [c for name in INLINE for c in v.parts[name]]
    live_out = [v.status, v.progress, v.seen, v.stage, *inline, *v.pending.values()]  # the rest follows markers
    for name, marker in v.pending.items():
        marker.change(h.deliver(name), {marker}, v.parts[name], show_progress="hidden")
    b["past_refresh"].click(h.list_past, None, v.past)
    b["open"].click(h.open_run, {v.past}, [*v.form, *v.dashboard, v.form_note])
    b["continue"].click(h.continue_from, {v.past}, v.fields["run.resume_from"])
    b["resume"].click(h.resume_run, {v.visitor, v.past}, v.status).then(h.tick, {v.seen}, live_out)
    v.preset.change(h.load_preset, {v.preset}, v.form).then(h.show_data, data_in, data_out)
    v.uploads["data.path"].upload(h.upload_into("data.path"), {v.uploads["data.path"]}, v.fields["data.path"]).then(
        h.show_data, data_in, data_out
    )
    extra = v.uploads["sft.extra_data"]
    extra.upload(h.upload_into("sft.extra_data"), {extra}, v.fields["sft.extra_data"])
    v.fields["data.path"].submit(h.show_data, data_in, data_out)
    v.fields["data.split"].submit(h.show_data, data_in, data_out)
    v.start.click(h.start_run, {v.visitor, *form}, v.status).then(h.tick, {v.seen}, live_out)
    v.stop.click(h.stop_run, {v.visitor}, v.status)
    b["show"].click(h.show_config, form, [v.yaml_view, v.cli_view])
    b["bench"].click(h.test_rewards, form, b["bench_out"])
    compared = [b["compare_note"], b["compare_plot"], b["compare_table"]]
    b["compare"].click(h.compare_runs, {b["compare_pick"]}, compared)
    b["compare_pick"].focus(h.list_past, None, b["compare_pick"])  # the runs as they are when it opens
    b["inspect"].click(h.inspect_groups, {b["inspect_step"], v.past}, [b["inspect_note"], b["inspect_table"]])
    editor = {b["reward_name"], b["reward_code"], *form}
    b["reward_save"].click(h.save_reward, editor, [b["reward_result"], v.fields[REWARD_TABLE]])
    b["download"].click(h.download_config, form, v.config_file)
    b["config_upload"].upload(h.upload_config, {b["config_upload"]}, [*v.form, v.status])
    # the refresh runs when the page's pulse says the run's stage moved, the feed (frontend-only: the page fetches
    # the feed's body and returns its values as the event's outputs) when it moved within a stage (ui/pulse.py).
    # "always_last": a pulse that lands while a refresh is on its way runs one more after it, so a page never keeps
    # a state older than its last pulse (a frontend-only event is not queued so: LOAD_JS drops an overtaken feed)
    refresh = gr.Button("Refresh", visible="hidden", elem_id=pulse.BUTTON_ID)
    refresh.click(h.tick, {v.seen}, live_out, show_progress="hidden", trigger_mode="always_last")
    feed = gr.Button("Feed", visible="hidden", elem_id=pulse.FEED_ID)
    feed.click(None, None, h.feed.outputs, js=pulse.feed_js(len(h.feed.outputs)), show_progress="hidden")
    h.on_load = [
        (h.show_data, data_in, data_out),
        (h.tick, {v.seen}, live_out),
        (h.list_past, None, v.past),
        (h.list_past, None, b["compare_pick"]),
    ]
    return h
