"""A prompt, every way the engine needs it: the text with its instruction (before it, or around it as a
template), the text without it, the text of a chat prompt or completion, and the string and token ids a model is
given (chat prompts through the model's chat template, as in training). One place for every caller: data,
rewards, evaluation, the live view and the decoder.
"""

from __future__ import annotations

from typing import Any

TEXT_SLOT = "{text}"  # where the text goes in an instruction template


def with_instruction(text: str, instruction: str) -> str:
    """The text with the instruction before it, or around it where the instruction is a template with `{text}`
    ("{text}\n\nSummarize the text above in one sentence." asks after the text, as a TL;DR prompt does)."""
    if not instruction.strip():
        return text
    if TEXT_SLOT in instruction:
        return instruction.replace(TEXT_SLOT, text, 1)
    return f"{instruction.strip()}\n\n{text}"


def without_instruction(prompt: str, instruction: str) -> str:
    """The text alone, from a prompt `with_instruction` built (for tables and the no-model baselines)."""
    if not instruction.strip():
        return prompt
    before, _, after = instruction.partition(TEXT_SLOT) if TEXT_SLOT in instruction else (instruction, "", "")
    return prompt.strip().removeprefix(before.strip()).removesuffix(after.strip()).strip()


def completion_text(completion: Any) -> str:
    """The text of a completion, whether a string or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, list):
        return "".join(completion_text(m) for m in completion)
    return str(completion)


def prompt_text(prompt: Any) -> str:
    """A prompt as one string (the last user message of a chat prompt): the text a summary is judged against."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"] or prompt
        return completion_text(users[-1])
    return str(prompt)


def render_prompt(prompt, tokenizer) -> str:
    """Chat prompts go through the model's chat template (as in training); plain ones stay as they are."""
    if isinstance(prompt, list):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def prompt_ids(tokenizer, prompt) -> list[int]:
    return tokenizer(render_prompt(prompt, tokenizer), add_special_tokens=False)["input_ids"]
