"""The Train tab's settings form: one widget per config key (its elem_id `cfg-<section>-<field>`, its info the
config's own help), filled from the start, the rarely-touched ones folded away."""

from __future__ import annotations

import gradio as gr

from ..config_help import field_help
from ..data import FILE_TYPES
from ..rewards import catalogue_markdown
from .forms import FORM_KEYS, REWARD_HEADERS, REWARD_TABLE


def settings_fields(
    values: dict,
) -> tuple[dict[str, gr.components.Component], dict[str, gr.UploadButton], gr.Markdown, gr.Dataframe]:
    """The settings widgets, keyed by their dotted config key and filled from the start (no empty form for a fast
    click to send); rarely-touched ones folded away."""
    f: dict[str, gr.components.Component] = {}
    f["model.name"] = gr.Textbox(
        label="Model",
    )
    with gr.Group():
        f["data.path"] = gr.Textbox(label="Dataset")
        upload = _upload_button("Upload a dataset file (.jsonl .json .csv .parquet .txt)", "data-upload")
        with gr.Row():
            f["data.split"] = gr.Textbox(label="Split", min_width=80)
            f["data.prompt_column"] = gr.Dropdown(
                ["auto"], label="Prompt column", allow_custom_value=True, min_width=120
            )
            f["data.max_samples"] = gr.Number(label="Max prompts (0 = all)", precision=0, min_width=100)
            f["data.overlong"] = gr.Dropdown(
                ["truncate", "truncate_left", "drop"],
                label="Too-long prompts",
                min_width=120,
            )
        f["data.instruction"] = gr.Textbox(
            label="Instruction",
            lines=2,
            max_lines=4,
        )
        f["data.chat_format"] = gr.Checkbox(label="Chat format (apply the model's chat template)")
    data_info = gr.Markdown(elem_id="data-info")
    with gr.Accordion("Dataset preview", open=False):
        data_preview = gr.Dataframe(wrap=True, max_height=260, elem_id="data-preview")
    with gr.Group():
        f[REWARD_TABLE] = gr.Dataframe(
            headers=REWARD_HEADERS,
            datatype=["str", "number", "bool"],
            column_count=(3, "fixed"),
            row_limits=(1, None),
            interactive=True,
            label="Rewards",
            column_widths=["50%", "25%", "25%"],
        )
        gr.Markdown(
            "Each reward has its own **weight** (0 = not optimised); **watch** charts a reward every step "
            "without optimising it: if the reward rises while these fall, it is being gamed. Add a row for "
            "your own `file.py:function`.",
            elem_classes="gs-hint",
        )
        with gr.Accordion("What each reward scores", open=False):
            gr.Markdown(catalogue_markdown(), elem_id="reward-catalogue")
        with gr.Row():
            f["reward.ideal_length"] = gr.Number(label="Ideal length (chars)", precision=0, minimum=1, min_width=100)
            f["reward.regex"] = gr.Textbox(label="one_sentence pattern")
            f["reward.length_unit"] = gr.Dropdown(["chars", "words", "tokens"], label="Length in", min_width=90)
        with gr.Accordion("Task reward settings (answers, formats, JSON, reward model)", open=False):
            with gr.Row():
                f["reward.answer_column"] = gr.Textbox(label="Answer column", min_width=120)
                f["reward.words_column"] = gr.Textbox(label="Words column (contains / avoids)", min_width=120)
            f["reward.pattern"] = gr.Textbox(label="regex reward pattern")
            with gr.Row():
                f["reward.json_keys"] = gr.Textbox(label="JSON keys required", placeholder="name, city, age")
                f["reward.overlong_buffer"] = gr.Number(label="Overlong buffer (tokens)", precision=0, min_width=90)
            f["reward.json_schema"] = gr.Textbox(label="JSON schema (a .json file or the schema)", max_lines=4)
            f["reward.reward_model"] = gr.Textbox(label="Reward model (Hub id or folder)")
    with gr.Accordion("Warm-up: supervised steps on reference answers before GRPO", open=False):
        with gr.Row():
            f["sft.steps"] = gr.Number(label="Steps (0 = off)", precision=0, minimum=0, min_width=80)
            f["sft.learning_rate"] = gr.Number(label="Learning rate", min_width=100, step=1e-5)
            f["sft.batch_size"] = gr.Number(label="Batch size", precision=0, minimum=1, min_width=80)
            f["sft.column"] = gr.Textbox(label="Answer column", min_width=100)
        f["sft.extra_data"] = gr.Textbox(label="More examples for the warm-up only (file or Hub dataset)")
        extra_upload = _upload_button("Upload examples for the warm-up (prompts with answers)", "extra-data-upload")
    with gr.Accordion("GRPO", open=True):
        with gr.Row():
            f["grpo.learning_rate"] = gr.Number(label="Learning rate", min_width=100, step=1e-5)
            f["grpo.max_steps"] = gr.Number(label="Max steps (-1 = epochs)", precision=0, min_width=100)
            f["grpo.num_train_epochs"] = gr.Number(label="Epochs", min_width=80)
        with gr.Row():
            f["grpo.per_device_train_batch_size"] = gr.Number(label="Batch size", precision=0, min_width=80)
            f["grpo.gradient_accumulation_steps"] = gr.Number(label="Grad. accum.", precision=0, min_width=80)
            f["grpo.num_generations"] = gr.Number(label="Generations", precision=0, min_width=80)
        with gr.Row():
            f["grpo.max_prompt_length"] = gr.Number(label="Max prompt tokens", precision=0, min_width=100)
            f["grpo.max_completion_length"] = gr.Number(label="Max completion tokens", precision=0, min_width=100)
    with gr.Accordion("Held-out quality during training", open=False):
        with gr.Row():
            f["run.eval_steps"] = gr.Number(
                label="Score every N steps (0 = off)", precision=0, minimum=0, min_width=100
            )
            f["run.eval_size"] = gr.Number(label="Held-out prompts", precision=0, minimum=1, min_width=90)
            f["run.guard"] = gr.Number(label="Guard: stop after N without a new best", precision=0, min_width=100)
        f["run.eval_prompts"] = gr.Textbox(label="Held-out prompts file (empty = the task's or the bundled ones)")
    with gr.Accordion("LoRA", open=False):
        with gr.Row():
            f["lora.r"] = gr.Number(label="Rank r", precision=0, min_width=80)
            f["lora.lora_alpha"] = gr.Number(label="Alpha", precision=0, min_width=80)
            f["lora.lora_dropout"] = gr.Number(label="Dropout", min_width=80)
        f["lora.target_modules"] = gr.Textbox(label="Target modules")
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            f["grpo.temperature"] = gr.Number(label="Temperature", min_width=80)
            f["grpo.top_p"] = gr.Number(label="Top-p", min_width=80)
            f["grpo.beta"] = gr.Number(label="Beta (KL)", min_width=80)
        with gr.Row():
            f["grpo.loss_type"] = gr.Dropdown(
                ["dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo"],
                label="Loss type",
                allow_custom_value=True,
                min_width=100,
            )
            f["grpo.scale_rewards"] = gr.Dropdown(["group", "batch", "none"], label="Scale rewards", min_width=100)
            f["grpo.optim"] = gr.Dropdown(
                ["auto", "adamw_torch", "adamw_8bit", "adafactor"],
                label="Optimizer",
                allow_custom_value=True,
                min_width=100,
            )
        with gr.Row():
            f["grpo.lr_scheduler_type"] = gr.Dropdown(
                ["linear", "cosine", "constant", "constant_with_warmup"],
                label="LR schedule",
                allow_custom_value=True,
                min_width=100,
            )
            f["grpo.warmup_steps"] = gr.Number(label="Warm-up (steps or fraction)", min_width=100)
            f["grpo.seed"] = gr.Number(label="Seed", precision=0, min_width=80)
        with gr.Row():
            f["grpo.bf16"] = gr.Checkbox(label="bf16 (where supported)")
            f["grpo.gradient_checkpointing"] = gr.Checkbox(label="Gradient checkpointing (saves memory)")
            f["grpo.save_steps"] = gr.Number(label="Save adapter every N steps (0 = end)", precision=0, min_width=100)
        with gr.Row():
            f["grpo.save_total_limit"] = gr.Number(label="Checkpoints kept (0 = all)", precision=0, min_width=100)
            f["run.report_to"] = gr.Dropdown(
                ["none", "trackio", "tensorboard", "wandb", "trackio,tensorboard"],
                label="Also log to",
                allow_custom_value=True,
                min_width=140,
            )
        with gr.Row():
            f["run.resume_from"] = gr.Textbox(label="Continue from adapter", scale=3)
            f["run.processes"] = gr.Number(label="Processes (GPUs)", precision=0, minimum=1, min_width=100)
    with gr.Accordion("vLLM generation (CUDA)", open=False):
        with gr.Row():
            f["grpo.use_vllm"] = gr.Checkbox(label="Generate with vLLM")
            f["grpo.vllm_mode"] = gr.Radio(
                ["colocate", "server"],
                label="Mode",
                min_width=160,
            )
            f["grpo.vllm_gpu_memory_utilization"] = gr.Number(label="GPU memory share (colocate)", min_width=100)
        f["grpo.vllm_server_base_url"] = gr.Textbox(
            label="vLLM server (server mode)", placeholder="http://0.0.0.0:8000 when empty"
        )
    assert set(f) == set(FORM_KEYS), set(f) ^ set(FORM_KEYS)
    for key, component in f.items():  # stable hooks for tests and custom CSS: #cfg-grpo-learning_rate
        component.elem_id = "cfg-" + key.replace(".", "-")
        if key != REWARD_TABLE:  # the config's own help text, as `config --explain` prints it
            component.info = field_help(key)
        initial_value(component, values[key])
    return f, {"data.path": upload, "sft.extra_data": extra_upload}, data_info, data_preview


def initial_value(component: gr.components.Component, value) -> None:
    """Give a built widget its first value, processed as its constructor would process `value=`."""
    shown = component.postprocess(value)
    component.value = shown.model_dump() if hasattr(shown, "model_dump") else shown


def _upload_button(label: str, elem_id: str) -> gr.UploadButton:
    """A small button that uploads a data file (its path goes to the field beside it)."""
    return gr.UploadButton(label, file_types=list(FILE_TYPES), type="filepath", size="sm", elem_id=elem_id)
