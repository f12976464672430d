"""The settings of each config section, every field with its default and the help text users read.

The help is the documentation: `config --explain`, the Train tab's hints and docs/configuration.md are generated
from it. `config.Config` gathers the sections; the `grpo` section uses TRL's `GRPOConfig` field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class ModelConfig:
    name: str = _f(
        "default",
        "'default' (offline SmolLM2-135M-Instruct; on a Space the recipe's "
        "SmolLM-135M-Instruct), a Hub id or a local folder.",
    )
    device: str = _f("auto", "auto | cpu | cuda.")
    dtype: str = _f("auto", "Weights dtype: auto (bf16 where the host supports it) | bfloat16 | float32 | float16.")
    attn_implementation: str = _f("auto", "auto (flash_attention_2 on CUDA when installed, else sdpa) | sdpa | eager.")
    trust_remote_code: bool = _f(False, "Allow models that ship their own code.")


@dataclass
class DataConfig:
    path: str = _f(
        "bundled",
        "'bundled' (short posts shipped in assets/), 'bundled-documents' (long texts), "
        "'bundled-mixed' (both), 'bundled-reason' (word problems), 'bundled-extract' (texts to JSON), a Hub "
        "dataset id, or a local "
        ".jsonl/.json/.csv/.parquet/.txt file.",
    )
    split: str = _f("train", "Split to train on (Hub datasets and the bundled set).")
    prompt_column: str = _f("auto", "Column holding the prompt; 'auto' tries prompt, text, content, messages.")
    instruction: str = _f(
        "",
        "Optional instruction put before each text, e.g. 'Summarize this post in one "
        "sentence.', or a template with {text} where the text goes ('{text}\\n\\nSummarize the text "
        "above in one sentence.' asks after it); empty keeps prompts as they are.",
    )
    system_prompt: str = _f("", "Optional system message (chat format only).")
    chat_format: bool = _f(False, "Wrap prompts as chat messages so the model's chat template is applied.")
    max_samples: int = _f(0, "Use at most this many prompts (0 = all).")
    overlong: str = _f(
        "truncate",
        "What to do with prompts over grpo.max_prompt_length tokens: truncate (keep the "
        "start) | truncate_left (keep the end, as TRL 0.14 did) | drop.",
    )
    max_file_mb: float = _f(200.0, "Refuse local dataset files larger than this (MB): a wrong file fails at once.")


@dataclass
class LoraSettings:
    r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA scaling (alpha).")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA path (PEFT's and the recipe's default: 0).")
    target_modules: str = _f("all-linear", "'all-linear' or comma-separated module names (q_proj,v_proj).")


@dataclass
class SFTSettings:
    steps: int = _f(
        0,
        "Supervised steps on the dataset's reference answers before GRPO (0 = off): GRPO only reinforces what the "
        "model already writes; a few steps on examples show it the task first.",
    )
    learning_rate: float = _f(3e-4, "Peak learning rate of those steps (decays linearly to 0).")
    batch_size: int = _f(8, "Examples per supervised step.")
    column: str = _f(
        "auto",
        "Column with the answers; 'auto' tries reference, summary, tldr (a `completion` column arrives as reference).",
    )
    extra_data: str = _f(
        "",
        "More examples for the warm-up only, beside the training data's answers: a file or dataset of prompts with "
        "answers, read like data.path ('' = none). GRPO never samples its prompts.",
    )


@dataclass
class GRPOSettings:
    learning_rate: float = _f(2e-5, "Peak learning rate.")
    per_device_train_batch_size: int = _f(8, "Completions per device per micro-batch.")
    gradient_accumulation_steps: int = _f(2, "Micro-batches per optimizer step.")
    num_generations: int = _f(8, "Completions sampled per prompt (the group GRPO compares).")
    max_prompt_length: int = _f(512, "Longest prompt in tokens; longer ones follow data.overlong.")
    max_completion_length: int = _f(96, "Longest completion in tokens.")
    temperature: float = _f(1.0, "Sampling temperature while training.")
    top_p: float = _f(1.0, "Nucleus sampling while training.")
    beta: float = _f(
        0.0,
        "KL penalty to the adapter the run starts from (a warm-up's or run.resume_from's), else to the base model "
        "(0 = none, no reference pass).",
    )
    loss_type: str = _f("dapo", "grpo | dr_grpo | dapo | bnpo ... (TRL's loss_type).")
    scale_rewards: str = _f("group", "group | batch | none: how advantages are scaled.")
    num_train_epochs: float = _f(1.0, "Epochs over the prompts (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = use epochs).")
    optim: str = _f("auto", "auto (adamw_8bit on CUDA with bitsandbytes, else adamw_torch) or a TRL optim name.")
    bf16: bool = _f(True, "bf16 mixed precision where the host supports it.")
    gradient_checkpointing: bool = _f(True, "Trade compute for memory.")
    lr_scheduler_type: str = _f("linear", "linear | cosine | constant ...")
    warmup_steps: float = _f(0, "Learning-rate warm-up: steps (>= 1) or a fraction of all steps (< 1).")
    logging_steps: int = _f(1, "Log metrics every N steps.")
    save_steps: int = _f(
        25, "Save the adapter and a resumable checkpoint every N steps (0 = only the adapter, at the end)."
    )
    save_total_limit: int = _f(2, "Keep the newest K checkpoints (0 = all): bounds disk use.")
    seed: int = _f(42, "Random seed.")
    use_vllm: bool = _f(
        False,
        "Generate completions with vLLM (CUDA; pip install vllm): pays off for long completions and large groups.",
    )
    vllm_mode: str = _f(
        "colocate",
        "colocate (vLLM inside the training process, sharing its GPUs) | server (a "
        "separate `trl vllm-serve` process on its own GPUs).",
    )
    vllm_server_base_url: str = _f("", "server mode: the `trl vllm-serve` address (empty = http://0.0.0.0:8000).")
    vllm_gpu_memory_utilization: float = _f(
        0.3, "colocate mode: the share of GPU memory vLLM takes for weights and KV cache."
    )
    extra: dict = _f({}, "Any other TRL GRPOConfig field, passed through as is.")


@dataclass
class RewardSettings:
    functions: list = _f(
        ["length"],
        "Rewards to use: length, one_sentence, grounding, no_repeat, summary, coverage, "
        "no_copy, or your own as file.py:function (TRL's reward-function convention).",
    )
    weights: list = _f([], "One weight per function (empty = all 1.0).")
    monitor: list = _f(
        ["grounding", "no_repeat", "summary", "coverage", "no_copy"],
        "Rewards logged and charted at every step but not optimised (weight 0): watch quality while the reward rises.",
    )
    ideal_length: int = _f(50, "Target length in characters for the length reward.")
    regex: str = _f(
        r"^(?:[^.!?\n]|[.!?](?=[^\s]))*[.!?][\"')]?$",
        "Pattern the one_sentence reward looks for "
        "(the whole completion); the default: one line that ends in . ! or ? and has no . ! or ? "
        "before a space inside it, so one sentence.",
    )
    pattern: str = _f(
        r"^<think>[\s\S]+?</think>\s*<answer>[\s\S]+?</answer>$",
        "Pattern the regex reward looks for (the whole completion); the default: reasoning in <think> tags, then "
        "the answer in <answer> tags.",
    )
    answer_column: str = _f(
        "answer",
        "Dataset column with the expected answer, for accuracy, cosine, exact_match, numeric_match, json_fields "
        "and rouge (which falls back to a reference, summary, tldr or completion column).",
    )
    words_column: str = _f("keywords", "Dataset column with the words contains / avoids look for (a list or text).")
    json_keys: str = _f("", "Keys the json reward requires, comma-separated (empty = any JSON object).")
    json_schema: str = _f(
        "", "A JSON schema (a .json file or the schema itself) the json reward's object must satisfy (empty = none)."
    )
    length_unit: str = _f("chars", "What the length reward counts: chars | words | tokens.")
    overlong_buffer: int = _f(
        16, "soft_overlong: tokens before max_completion_length where the penalty starts (TRL's soft_punish_cache)."
    )
    reward_model: str = _f(
        "",
        "A sequence-classification model (Hub id or folder) for the reward_model reward: its score of prompt + "
        "completion.",
    )


@dataclass
class GenerationSettings:
    max_new_tokens: int = _f(256, "Tokens to generate.")
    temperature: float = _f(0.5, "Sampling temperature.")
    min_p: float = _f(0.1, "Drop tokens below this fraction of the top token's probability (0 = off).")
    top_p: float = _f(1.0, "Nucleus sampling.")
    do_sample: bool = _f(True, "Sample (True) or greedy decode (False).")
    repetition_penalty: float = _f(1.0, "Penalise repeated tokens (1.0 = off).")
    seed: int = _f(0, "Seed so two models see the same random stream.")


@dataclass
class RunSettings:
    dir: str = _f("", "Run folder; empty = <root>/<timestamp>-<model>.")
    root: str = _f("runs", "Where new run folders are created.")
    resume_from: str = _f("", "Adapter folder to continue training from.")
    processes: int = _f(
        1,
        "Training processes the app starts for a run (accelerate launch --num_processes N, one "
        "per GPU); the CLI is launched with accelerate itself.",
    )
    report_to: str = _f(
        "none",
        "Experiment trackers besides the app's own charts: none | trackio | tensorboard | "
        "wandb (offline without WANDB_API_KEY), comma-separated for several.",
    )
    eval_steps: int = _f(
        0,
        "Score held-out prompts every this many steps and at the end, and keep the best adapter in <run>/best/ "
        "(0 = off).",
    )
    eval_prompts: str = _f(
        "",
        "Held-out prompts file for eval_steps; empty = the task's held-out split, the bundled held-out texts, or "
        "the dataset's test split.",
    )
    eval_size: int = _f(8, "How many held-out prompts each evaluation answers (greedy).")
    guard: int = _f(
        0,
        "Stop when the held-out score stays below its best for this many evaluations while the reward rises (the "
        "model games the reward); best/ keeps the best adapter (0 = off).",
    )


@dataclass
class SpeedSettings:
    logits_head: str = _f(
        "auto",
        "Log-probs with the LM head on real completion tokens only and one chunked "
        "log-softmax, instead of TRL's chunked kernel: auto (on for CPU) | on | off.",
    )
    merged_generation: str = _f(
        "auto",
        "Generate from a merged copy of base + LoRA (an extra copy of the weights): auto (on for CPU) | on | off.",
    )
    skip_checkpointing: str = _f(
        "auto",
        "Turn gradient checkpointing off where memory allows (it repeats the "
        "forward pass): auto (CPU and < 1B parameters) | on | off.",
    )
    shared_prefix: str = _f(
        "auto",
        "Forward each distinct prompt once per batch and share its KV cache with its "
        "num_generations completions in training (needs logits_head): auto (on for CPU) | on | "
        "off.",
    )
    fast_decode: str = _f(
        "auto",
        "Sample completions with GRPO Studio's decoder (prompt prefilled once, preallocated "
        "KV cache, exact cheap sampling; needs merged_generation) instead of generate(): auto (on "
        "for CPU) | on | off.",
    )
    grouped_attention: str = _f(
        "auto",
        "Attention where each K/V head serves its query heads in place, instead of "
        "sdpa (slow on a CPU for one query or in backward): auto (on for CPU) | on | off.",
    )
    return_memory: str = _f(
        "off",
        "Give freed CPU memory back to the system after each step (glibc: a fixed mmap threshold, a heap trim): "
        "on | off. Less memory between steps, a few percent slower steps; off by default, as the quick run's peak "
        "is already 2.8 GB and each run's process gives all back when it ends (docs/performance.md, Memory).",
    )
    threads: int = _f(0, "torch CPU threads (0 = torch's default).")
