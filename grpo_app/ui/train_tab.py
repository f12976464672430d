"""The Train tab: settings on the left, the live view of the process's training job on the right.

Callbacks stay thin: they read widgets, call the engine (forms, JobRegistry) and format its snapshot.
A timer polls the job every 1.5 s only while a run is active.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd
import torch

from ..access import Policy
from ..config import ConfigError, DataConfig, preset
from ..data import preview
from ..jobs import JobBusy, JobRegistry, NotYourRun
from ..models import pin_default
from ..rewards import BUILTIN_REWARDS
from ..runs import Run, list_runs
from . import live, manage
from .charts import all_figures
from .forms import FORM_KEYS, cli_command, cluster_commands, config_to_form, form_to_config
from .manage import create_export_panel, create_run_manager

FILE_TYPES = [".jsonl", ".json", ".csv", ".parquet", ".txt"]


def _fields() -> dict[str, gr.components.Component]:
    """The settings widgets, keyed by their dotted config key; rarely-touched ones folded away."""
    f: dict[str, gr.components.Component] = {}
    default = pin_default("default")
    default = "offline SmolLM2-135M-Instruct" if default == "default" else default
    f["model.name"] = gr.Textbox(label="Model", info=f"'default' = {default}; or a Hub id "
                                 "(HuggingFaceTB/SmolLM-135M-Instruct) or a local folder.")
    with gr.Group():
        f["data.path"] = gr.Textbox(label="Dataset", info="'bundled' posts, a Hub dataset id, or a file "
                                    "(upload below). Press Enter to preview.")
        upload = gr.UploadButton("Upload a dataset file (.jsonl .json .csv .parquet .txt)", file_types=FILE_TYPES,
                                 type="filepath", size="sm")
        with gr.Row():
            f["data.split"] = gr.Textbox(label="Split", min_width=80)
            f["data.prompt_column"] = gr.Dropdown(["auto"], label="Prompt column", allow_custom_value=True,
                                                  min_width=120)
            f["data.max_samples"] = gr.Number(label="Max prompts (0 = all)", precision=0, min_width=100)
            f["data.overlong"] = gr.Dropdown(["truncate", "truncate_left", "drop"], label="Too-long prompts",
                                             min_width=120, info="over the max prompt tokens")
        f["data.instruction"] = gr.Textbox(label="Instruction", info="Put before each text, e.g. 'Summarize this "
                                           "post in one sentence.' Empty keeps prompts exactly as they are.")
        f["data.chat_format"] = gr.Checkbox(label="Chat format (apply the model's chat template)")
    data_info = gr.Markdown(elem_id="data-info")
    with gr.Accordion("Dataset preview", open=False):
        data_preview = gr.Dataframe(wrap=True, max_height=260, elem_id="data-preview")
    with gr.Group():
        f["reward.functions"] = gr.CheckboxGroup(
            list(BUILTIN_REWARDS), label="Reward functions",
            info="; ".join(f"{k}: {v}" for k, v in BUILTIN_REWARDS.items()))
        with gr.Row():
            f["reward.ideal_length"] = gr.Number(label="Ideal length (chars)", precision=0, min_width=100)
            f["reward.weights"] = gr.Textbox(label="Weights", info="One per function, e.g. 1, 0.5 (empty = all 1)")
        f["reward.monitor"] = gr.CheckboxGroup(
            list(BUILTIN_REWARDS), label="Watch (charted every step, not optimised)",
            info="Quality to see beside the reward: if the reward rises while these fall, the reward is being gamed.")
        f["reward.regex"] = gr.Textbox(label="one_sentence pattern", info="Regex the whole completion must match.")
    with gr.Accordion("GRPO", open=True):
        with gr.Row():
            f["grpo.learning_rate"] = gr.Number(label="Learning rate", min_width=100)
            f["grpo.max_steps"] = gr.Number(label="Max steps (-1 = epochs)", precision=0, min_width=100)
            f["grpo.num_train_epochs"] = gr.Number(label="Epochs", min_width=80)
        with gr.Row():
            f["grpo.per_device_train_batch_size"] = gr.Number(label="Batch size", precision=0, min_width=80,
                                                              info="completions per micro-batch")
            f["grpo.gradient_accumulation_steps"] = gr.Number(label="Grad. accumulation", precision=0, min_width=80)
            f["grpo.num_generations"] = gr.Number(label="Generations", precision=0, min_width=80,
                                                  info="completions per prompt")
        with gr.Row():
            f["grpo.max_prompt_length"] = gr.Number(label="Max prompt tokens", precision=0, min_width=100)
            f["grpo.max_completion_length"] = gr.Number(label="Max completion tokens", precision=0, min_width=100)
    with gr.Accordion("LoRA", open=False):
        with gr.Row():
            f["lora.r"] = gr.Number(label="Rank r", precision=0, min_width=80)
            f["lora.lora_alpha"] = gr.Number(label="Alpha", precision=0, min_width=80)
            f["lora.lora_dropout"] = gr.Number(label="Dropout", min_width=80)
        f["lora.target_modules"] = gr.Textbox(label="Target modules", info="all-linear, or q_proj,v_proj,…")
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            f["grpo.temperature"] = gr.Number(label="Temperature", min_width=80, info="sampling while training")
            f["grpo.top_p"] = gr.Number(label="Top-p", min_width=80)
            f["grpo.beta"] = gr.Number(label="Beta (KL)", min_width=80, info="0 = no KL, no reference pass")
        with gr.Row():
            f["grpo.loss_type"] = gr.Dropdown(["dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo"],
                                              label="Loss type", allow_custom_value=True, min_width=100)
            f["grpo.scale_rewards"] = gr.Dropdown(["group", "batch", "none"], label="Scale rewards", min_width=100)
            f["grpo.optim"] = gr.Dropdown(["auto", "adamw_torch", "adamw_8bit", "adafactor"], label="Optimizer",
                                          allow_custom_value=True, min_width=100, info="auto picks for the host")
        with gr.Row():
            f["grpo.lr_scheduler_type"] = gr.Dropdown(["linear", "cosine", "constant", "constant_with_warmup"],
                                                      label="LR schedule", allow_custom_value=True, min_width=100)
            f["grpo.warmup_steps"] = gr.Number(label="Warm-up (steps or fraction)", min_width=100)
            f["grpo.seed"] = gr.Number(label="Seed", precision=0, min_width=80)
        with gr.Row():
            f["grpo.bf16"] = gr.Checkbox(label="bf16 (where supported)")
            f["grpo.gradient_checkpointing"] = gr.Checkbox(label="Gradient checkpointing (saves memory)")
            f["grpo.save_steps"] = gr.Number(label="Save adapter every N steps (0 = end)", precision=0, min_width=100)
        with gr.Row():
            f["grpo.save_total_limit"] = gr.Number(label="Checkpoints kept (0 = all)", precision=0, min_width=100)
            f["run.report_to"] = gr.Dropdown(["none", "trackio", "tensorboard", "wandb", "trackio,tensorboard"],
                                             label="Also log to", allow_custom_value=True, min_width=140,
                                             info="trackio / tensorboard: local files; wandb: offline without a key")
        f["run.resume_from"] = gr.Textbox(label="Continue from adapter", info="A previous run's adapter/ folder.")
    with gr.Accordion("vLLM generation (CUDA)", open=False):
        with gr.Row():
            f["grpo.use_vllm"] = gr.Checkbox(label="Generate with vLLM", info="pip install vllm; CUDA only")
            f["grpo.vllm_mode"] = gr.Radio(["colocate", "server"], label="Mode", min_width=160,
                                           info="colocate: in this process; server: `trl vllm-serve` on other GPUs")
            f["grpo.vllm_gpu_memory_utilization"] = gr.Number(label="GPU memory share (colocate)", min_width=100)
        f["grpo.vllm_server_base_url"] = gr.Textbox(label="vLLM server (server mode)",
                                                    placeholder="http://0.0.0.0:8000 when empty")
    assert set(f) == set(FORM_KEYS), set(f) ^ set(FORM_KEYS)
    for key, component in f.items():  # stable hooks for tests and custom CSS: #cfg-grpo-learning_rate
        component.elem_id = "cfg-" + key.replace(".", "-")
    return f, upload, data_info, data_preview


def _past_choices(runs_root: str) -> dict:
    return {"choices": [(r.label, str(r.path)) for r in list_runs(runs_root)]}


def _values(keys, values) -> dict:
    return dict(zip(keys, values, strict=True))


def create_train_tab(registry: JobRegistry, runs_root: str = "runs", policy: Policy | None = None,
                     visitor: gr.State | None = None) -> dict[str, gr.components.Component]:
    """`visitor`: this browser's id (a BrowserState), the owner of the runs it starts on a public app."""
    visitor = visitor if visitor is not None else gr.State("")
    policy = policy or Policy(runs_root=runs_root)
    default_preset = "recipe" if torch.cuda.is_available() else "quick"

    def list_past():
        return gr.update(**_past_choices(runs_root))

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=380):
            preset_radio = gr.Radio(["quick", "recipe"], value=default_preset, label="Preset",
                                    info="quick: learns visibly on a laptop CPU in minutes. recipe: the Hugging "
                                    "Face course's settings (needs the Hub; a GPU is best).")
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="start-btn")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-btn")
            fields, upload, data_info, data_preview = _fields()
            keys = list(fields)
            inputs = [fields[k] for k in keys]
            with gr.Accordion("Past runs", open=False):
                with gr.Row():
                    past = gr.Dropdown(label="Run", choices=[], scale=4, elem_id="past-run")
                    past_refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
                with gr.Row():
                    open_btn = gr.Button("Open (settings + charts)", size="sm", elem_id="open-run-btn")
                    resume_btn = gr.Button("Resume", size="sm", elem_id="resume-run-btn")
                    continue_btn = gr.Button("Continue from its adapter", size="sm")
                create_run_manager(past, runs_root, lambda: _past_choices(runs_root), policy)
            create_export_panel(past, policy)
            with gr.Accordion("Config and CLI command", open=False):
                with gr.Row():
                    show = gr.Button("Show config", size="sm")
                    download = gr.Button("Download settings (YAML)", size="sm", elem_id="config-download")
                    config_upload = gr.UploadButton("Load settings (YAML)", file_types=[".yaml", ".yml"],
                                                    type="filepath", size="sm", elem_id="config-upload")
                config_out = gr.File(label="Settings (the YAML `train --config` takes)", visible=False,
                                     interactive=False, elem_id="config-file")
                yaml_view = gr.Code(language="yaml", label="config.yaml", interactive=False)
                cli_view = gr.Code(language="shell", label="Reproduce headless", interactive=False)
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown(elem_id="train-status")
            progress = gr.HTML(elem_id="train-progress")
            warning = gr.Markdown(elem_id="hacking-warning", elem_classes="gs-warning")
            with gr.Row():
                reward_plot = gr.Plot(elem_id="plot-reward", show_label=False)
                quality_plot = gr.Plot(elem_id="plot-quality", show_label=False)
            with gr.Row():
                loss_plot = gr.Plot(elem_id="plot-loss", show_label=False)
                length_plot = gr.Plot(elem_id="plot-length", show_label=False)
            health_plot = gr.Plot(elem_id="plot-health", show_label=False)
            completions_caption = gr.Markdown(elem_id="completions-caption")
            completions = gr.Dataframe(wrap=True, max_height=420, elem_id="completions-table",
                                       column_widths=["22%", "48%", "8%"])
            with gr.Accordion("Log", open=False):
                log = gr.Textbox(lines=10, max_lines=20, show_label=False, elem_id="train-log")
    # always ticking: an idle tick costs a snapshot and sends nothing, and a page never misses a run because a
    # refresh computed before Start (the page-load one, say) came back after it and switched the timer off
    timer = gr.Timer(1.5)
    seen = gr.State((None, -1, -1))  # (job id, state version, metrics drawn) last sent to this page
    plots = [reward_plot, loss_plot, length_plot, quality_plot, health_plot]

    def load_preset(name):
        return config_to_form(preset(name), keys)

    def show_data(path, split, column):
        try:
            policy.check_dataset(path or "bundled")
            columns, detected, rows, count = preview(DataConfig(path=path or "bundled", split=split or "train",
                                                                prompt_column=column or "auto"))
        except ConfigError as e:
            return f"❌ {e}", None, gr.update()
        info = f"**{count} rows** · prompt column **{detected}** · columns: {', '.join(columns)}"
        frame = pd.DataFrame([{c: live.shorten(r[c], 200) for c in columns} for r in rows])
        return info, frame, gr.update(choices=["auto", *columns], value=column or "auto")

    def launch(cfg, visitor, resume=False) -> str:
        """Start under the operator's policy: caps applied, the visitor recorded as the owner on a public app."""
        policy.check_config(cfg)
        note = policy.apply_caps(cfg)
        owner = (visitor or "anonymous") if policy.owned_runs else ""
        try:
            registry.start(cfg, resume=resume, owner=owner, max_seconds=policy.max_minutes * 60)
        except JobBusy as e:
            raise JobBusy(f"{e} {live.busy_hint()}".strip()) from None
        return note

    def start_run(visitor, *values):
        try:
            cfg = form_to_config(_values(keys, values))
            cfg.run.root, cfg.run.dir = runs_root, ""
            note = launch(cfg, visitor)
        except ConfigError as e:
            gr.Warning(str(e))
            return f"**❌ Not started** — {e}"
        if note:
            gr.Info(note)  # the status line moves on at the next refresh; the cap deserves to be seen
        return f"**⏳ Starting…** {note}"

    def resume_run(visitor, path):
        """The selected run goes on from its last checkpoint, with its own config and the same logs."""
        try:
            note = launch(Run(policy.run_folder(path)).config(), visitor, resume=True)
        except ConfigError as e:
            gr.Warning(str(e))
            return f"**❌ Not resumed** — {e}"
        return f"**⏳ Resuming…** {note}"

    def stop_run(visitor):
        try:
            if not registry.stop(visitor or "anonymous"):
                return gr.update()
        except NotYourRun as e:
            gr.Warning(str(e))
            return f"**🔒 {e}** {live.busy_hint()}"
        return live.status_markdown(registry.snapshot())

    def download_config(*values):
        try:
            return gr.update(value=manage.config_file(form_to_config(_values(keys, values))), visible=True)
        except ConfigError as e:
            gr.Warning(str(e))
            return gr.update(visible=False)

    def upload_config(path):
        try:
            return [*config_to_form(manage.read_config_file(path), keys), "Settings loaded from the YAML file."]
        except ConfigError as e:
            return [*[gr.skip()] * len(keys), f"❌ {e}"]

    def show_config(*values):
        try:
            cfg = form_to_config(_values(keys, values))
        except ConfigError as e:
            return f"# {e}", ""
        return cfg.to_yaml(), f"{cli_command(cfg)}\n\n{cluster_commands()}"

    def refresh(last):
        job_id, version, drawn = last
        s = registry.snapshot()
        current = id(registry.current)
        changed = (current, s.version) != (job_id, version)
        if not changed and not s.active:
            return [gr.skip()] * (len(live_outputs) - 1) + [last]
        draw = current != job_id or len(s.metrics) != drawn
        drawn_now = [*all_figures(s.metrics), live.warning_markdown(s.metrics)] if draw else None
        figures = drawn_now or [gr.skip()] * (len(plots) + 1)
        instruction = registry.current.cfg.data.instruction if registry.current else ""
        table = live.completions_frame(s.completions, instruction) if changed else gr.skip()
        return [live.status_markdown(s), live.progress_html(s), *figures, live.completions_caption(s), table,
                live.log_text(s), (current, s.version, len(s.metrics))]

    live_outputs = [status, progress, *plots, warning, completions_caption, completions, log, seen]


    def open_run(path):
        try:
            run = Run(policy.run_folder(path))
        except ConfigError as e:
            gr.Warning(str(e))
            return [gr.skip()] * (len(keys) + len(plots) + 5)
        s = live.run_snapshot(run)
        try:
            cfg = run.config()
            form, instruction = config_to_form(cfg, keys), cfg.data.instruction
        except ConfigError:  # an unreadable config.yaml: still show the charts
            form, instruction = [gr.skip()] * len(keys), ""
        return [*form, live.status_markdown(s), live.progress_html(s), *all_figures(s.metrics),
                live.warning_markdown(s.metrics), live.completions_caption(s),
                live.completions_frame(s.completions, instruction)]

    def continue_from(path):
        try:
            policy.run_folder(path)
        except ConfigError as e:
            gr.Warning(str(e))
            return gr.skip()
        if not Run(path).has_adapter():
            gr.Warning("That run has no saved adapter.")
            return gr.skip()
        return str(Run(path).adapter_dir)

    past_refresh.click(list_past, None, past)
    open_btn.click(open_run, past, [*inputs, status, progress, *plots, warning, completions_caption, completions])
    continue_btn.click(continue_from, past, fields["run.resume_from"])
    resume_btn.click(resume_run, [visitor, past], status).then(refresh, seen, live_outputs)
    data_args = ([fields["data.path"], fields["data.split"], fields["data.prompt_column"]],
                 [data_info, data_preview, fields["data.prompt_column"]])
    preset_radio.change(load_preset, preset_radio, inputs).then(show_data, *data_args)
    upload.upload(lambda p: p, upload, fields["data.path"]).then(show_data, *data_args)
    fields["data.path"].submit(show_data, *data_args)
    fields["data.split"].submit(show_data, *data_args)
    start.click(start_run, [visitor, *inputs], status).then(refresh, seen, live_outputs)
    stop.click(stop_run, visitor, status)
    show.click(show_config, inputs, [yaml_view, cli_view])
    download.click(download_config, inputs, config_out)
    config_upload.upload(upload_config, config_upload, [*inputs, status])
    timer.tick(refresh, seen, live_outputs, show_progress="hidden")
    return {"preset": preset_radio, "inputs": inputs, "keys": keys, "load_preset": load_preset,
            "show_data": show_data, "data_args": data_args, "refresh": refresh, "seen": seen,
            "live_outputs": live_outputs, "fields": fields, "on_load": (list_past, None, past)}
