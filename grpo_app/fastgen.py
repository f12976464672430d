"""The fast decoder where a user waits: the Compare tab, the batch comparison, `generate` and `eval`.

Training already samples with `decoding.Decoder`; here it also serves inference. Batches of prompts run as one
decoder each (prompts sorted by length, so little padding), and several models stream at once: the base and the
tuned model take turns, one token each, so both answers grow together. Every row has its own seeded random
stream: a prompt's answer does not depend on its batch, and the base answer not on the adapter beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from transformers import GenerationConfig

from . import decoding
from .config import GenerationSettings
from .generation import Generation, generate_kwargs, render_prompt


def generation_config(settings: GenerationSettings, tokenizer) -> GenerationConfig:
    return GenerationConfig(**generate_kwargs(settings, tokenizer))


def prepare(model) -> None:
    """Decoding layout, once per model: grouped one-query attention and, on a bf16 CPU, oneDNN-packed weights.

    An inference copy never changes, so its Linear weights are dropped once packed: the packed copy is the only
    one held."""
    if getattr(model, "_decoding_ready", False):
        return
    decoding.use_grouped_attention(model)
    if decoding.pack_linears(model):
        for module in model.modules():
            if isinstance(module, decoding.PackedLinear):
                module.weight = None
    model._decoding_ready = True


def seeded(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def prompt_ids(tokenizer, prompt) -> list[int]:
    return tokenizer(render_prompt(prompt, tokenizer), add_special_tokens=False)["input_ids"]


CACHE_TOKENS = 32_768  # rows x (longest prompt + new tokens) per decoder: ~0.7 GB of KV cache for SmolLM2-135M


def batches(lengths: list[int], new_tokens: int, max_rows: int) -> list[list[int]]:
    """Prompt indices in decoders: similar lengths together (little padding), each within the KV-cache budget."""
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        rows = out[-1] if out else None
        if rows and len(rows) < max_rows and (len(rows) + 1) * (lengths[i] + new_tokens) <= CACHE_TOKENS:
            rows.append(i)
        else:
            out.append([i])
    return out


def batch(
    model,
    tokenizer,
    prompts: list,
    settings: GenerationSettings,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[Generation]:
    """Answers in the prompts' order; prompt i draws from seed + i whatever batch it lands in."""
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    config, out, done = generation_config(settings, tokenizer), [None] * len(ids), 0
    for part in batches([len(x) for x in ids], settings.max_new_tokens, max(1, batch_size)):
        t0 = time.perf_counter()
        decoder = decoding.Decoder(
            model, [ids[i] for i in part], config, generators=[seeded(settings.seed + i, model.device) for i in part]
        )
        while decoder.step():
            if progress and decoder.t % 16 == 0:  # answers finished so far, for a progress bar that moves
                progress(done + int((decoder.length < decoder.t).sum()), len(ids))
        seconds = (time.perf_counter() - t0) / len(part)
        for i, tokens in zip(part, decoder.completions(), strict=True):
            out[i] = Generation(tokenizer.decode(tokens, skip_special_tokens=True).strip(), len(tokens), seconds)
        done += len(part)
        if progress:
            progress(done, len(ids))
    return out


def stream_together(models: list, tokenizer, prompt, settings: GenerationSettings) -> Iterator[list[Generation]]:
    """The same prompt to each model, all answers growing together; yields every answer after each token.

    Each model is prefilled in turn and shows its first token at once, then they take turns a token each. Each
    side draws from `settings.seed`, as it would alone."""
    ids, config = prompt_ids(tokenizer, prompt), generation_config(settings, tokenizer)
    t0, decoders = time.perf_counter(), []
    answers = [Generation("", 0, 0.0) for _ in models]

    def show(i: int) -> None:
        tokens = decoders[i].completions()[0]
        answers[i] = Generation(
            tokenizer.decode(tokens, skip_special_tokens=True).strip(), len(tokens), time.perf_counter() - t0
        )

    for i, model in enumerate(models):
        decoders.append(decoding.Decoder(model, [ids], config, generators=[seeded(settings.seed, model.device)]))
        decoders[i].step()
        show(i)
        yield list(answers)
    while not all(d.done for d in decoders):
        for i, decoder in enumerate(decoders):
            if not decoder.done:
                decoder.step()
                show(i)
        yield list(answers)
