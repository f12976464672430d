"""The presets: `recipe` (the Hugging Face course as published), `quick` (learns to summarise on a laptop CPU),
and the task templates `reason` (think, then answer a word problem) and `extract` (a text to JSON).

Plain dicts in the config's own shape, applied by `config.preset(name)`; docs/usage.md explains the recipe,
docs/experiments.md how `quick` was chosen.
"""

from __future__ import annotations

import os

SPACE_DATASET = "mlabonne/smoltldr"  # the recipe's posts, the quick preset's texts on a Space

# Measured on the offline SmolLM2-135M (docs/experiments.md, 2026-11-30): asked in words, it never wrote the tags
# (0 of 48 answers); shown one worked example as plain text that ends in an open <think>, 30 of 48 had the format.
REASON_INSTRUCTION = (
    "Question: Ann has 3 apples and buys 4 more. How many apples does she have?\n"
    "<think>3 apples plus 4 apples is 7 apples.</think>\n<answer>7</answer>\n\n"
    "Question: {text}\n<think>"
)
REASON_PATTERN = r"^[^<]+</think>\s*<answer>\s*-?[\d,.]+\s*</answer>$"  # the prompt opened <think>
# Asked alone, 7 of 48 answers were JSON; with one example, 37 of 48.
EXTRACT_INSTRUCTION = (
    "Extract the person's name, city and age as JSON.\n\n"
    'Text: Hi, I am Ana Silva, 41, and I live in Porto.\nJSON: {"name": "Ana Silva", "city": "Porto", "age": 41}'
    "\n\nText: {text}\nJSON:"
)
TASK_GRPO = {  # the quick preset's optimiser and sampling, on short prompts
    "learning_rate": 2e-4,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_generations": 8,
    "max_prompt_length": 256,
    "temperature": 0.8,
    "beta": 0.04,
    "max_steps": 60,
    "gradient_checkpointing": False,
    "save_steps": 20,
}

TASK = {  # what the task templates share besides their data, sampling length and rewards
    "model": {"name": "default"},
    "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
    "generation": {"max_new_tokens": 64},
    "run": {"eval_steps": 20, "eval_size": 8},
}

PRESETS: dict[str, dict] = {
    # The course pinned trl==0.14.0; every value it relied on is stated here, including the TRL defaults of
    # then that TRL 1.x changed (docs/usage.md, "The recipe preset pins ...").
    "recipe": {
        "model": {"name": "HuggingFaceTB/SmolLM-135M-Instruct"},
        "data": {"path": "mlabonne/smoltldr", "prompt_column": "prompt", "overlong": "truncate_left"},
        "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear", "lora_dropout": 0.0},
        "grpo": {
            "learning_rate": 2e-5,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 2,
            "max_prompt_length": 512,
            "max_completion_length": 96,
            "num_generations": 8,
            "optim": "adamw_8bit",
            "bf16": True,
            "num_train_epochs": 1,
            "max_steps": -1,
            "logging_steps": 1,
            # TRL 0.14 defaults the course inherited (TRL 1.16's own default in the comment)
            "beta": 0.04,  # 0.0: no KL term, no reference model
            "loss_type": "grpo",  # dapo: token-level normalisation
            "scale_rewards": "group",  # group (unchanged): advantages divided by the group's std
            "temperature": 0.9,  # 1.0
            "top_p": 1.0,
            "top_k": 50,  # 0 (off); 0.14 sampled with GenerationConfig's default top_k=50
            "use_bias_correction_kl": False,  # True: KL multiplied by the importance ratio
            "gradient_checkpointing": False,  # True (memory only, same maths)
            "lr_scheduler_type": "linear",
            "warmup_steps": 0,
            "num_iterations": 1,
            "epsilon": 0.2,
            "mask_truncated_completions": False,
        },
        "reward": {"functions": ["length"], "ideal_length": 50},
        "generation": {"max_new_tokens": 256, "temperature": 0.5, "min_p": 0.1, "do_sample": True},
    },
    # Chosen by measurement on the 2-core dev machine (docs/experiments.md: every run tried, three seeds).
    "quick": {
        "model": {"name": "default"},
        "data": {
            "path": "bundled-mixed",
            # asked after the text: asked before it, the model continued a post's SUBREDDIT/TITLE lines
            "instruction": "{text}\n\nSummarize the text above in one short sentence, in your own words.",
            "chat_format": True,
        },
        "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
        # 40 supervised steps on the training texts' reference summaries first (about 2.5 minutes here): GRPO alone
        # never found a post's problem and question in one sentence, it copied titles and first lines
        "sft": {"steps": 40, "batch_size": 4, "learning_rate": 5e-4},
        "grpo": {
            "learning_rate": 2e-4,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1,
            "num_generations": 8,  # one prompt a step, 8 answers to compare: a passing answer in most groups
            "max_prompt_length": 768,
            "max_completion_length": 48,
            "temperature": 0.8,
            "beta": 0.04,
            "max_steps": 55,
            "gradient_checkpointing": False,
            "save_steps": 20,
        },
        "reward": {
            # the rule pays for a summary; coverage for the body beyond its opening; no_copy charges a copied
            # title, heading or sentence; one_sentence stops the answer after one sentence; rouge pays for what the
            # reference says, title_gist for the title's content in other words (0 for a copy)
            "functions": [
                "length",
                "grounding",
                "summary",
                "no_repeat",
                "coverage",
                "no_copy",
                "one_sentence",
                "rouge",
                "title_gist",
            ],
            "weights": [2, 100, 100, 100, 100, 150, 50, 200, 100],
            "ideal_length": 80,
        },
        # 8 held-out texts (posts, documents, plain) answered every 20 steps: the chart's held-out line, best/
        "run": {"eval_steps": 20, "eval_size": 8},
    },
    # Task templates (docs/experiments.md, 2026-11-30): a verifiable answer in a column, checked by the rewards.
    "reason": {
        **TASK,
        "data": {
            "path": "bundled-reason",
            "instruction": REASON_INSTRUCTION,
            "chat_format": False,  # a worked example to continue, not a chat turn
        },
        "grpo": {**TASK_GRPO, "max_completion_length": 64},
        "reward": {
            "functions": ["regex", "numeric_match", "soft_overlong"],
            "weights": [1, 2, 1],
            "monitor": ["exact_match"],
            "pattern": REASON_PATTERN,
            "overlong_buffer": 16,
        },
    },
    "extract": {
        **TASK,
        "data": {
            "path": "bundled-extract",
            "instruction": EXTRACT_INSTRUCTION,
            "chat_format": True,
        },
        "grpo": {**TASK_GRPO, "max_completion_length": 48},
        "reward": {
            "functions": ["json", "json_fields"],
            "weights": [1, 2],
            "monitor": [],
            "json_keys": "name, city, age",
        },
    },
}


def default_dataset() -> str:
    """The quick preset's texts: the bundled ones here, the recipe's Hub dataset on a Space (`SPACE_ID`).

    `GRPO_STUDIO_DEFAULT_DATASET` overrides both (a Space operator's own dataset, or a test without the Hub)."""
    chosen = os.environ.get("GRPO_STUDIO_DEFAULT_DATASET", "").strip()
    return chosen or (SPACE_DATASET if os.environ.get("SPACE_ID") else "bundled-mixed")
