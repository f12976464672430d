"""Sampling GRPO's completions without `generate`'s per-token overheads (the `fast_decode` lever).

One decode step of SmolLM2-135M for 16 sequences took ~150 ms inside `generate` on the 2-core dev
machine, and most of it was not the model's matmuls: ~75 ms in torch's CPU flash-attention kernel
(tiled for long queries, slow for a single one), ~20 ms re-concatenating the growing KV cache, and
~16 ms in `torch.multinomial`. GRPO also sends every prompt `num_generations` times. So here:
- each distinct prompt is prefilled once, and its K/V is read once a step for all the rows that share it
  (`SharedPrefix`: the rows' own cache holds only their new tokens);
- the KV cache is preallocated (transformers' `StaticCache`) and written in place;
- one-token attention is two grouped matmuls that never repeat K/V across query heads;
- a token is drawn with one uniform per row against the cumulative distribution (exact);
- finished rows leave the batch and its KV cache;
- on a bf16 CPU the weights are laid out for oneDNN once per generation (`PackedLinear`).
Logits go through transformers' own processors (repetition penalty, temperature, top-k, top-p,
min-p), so the distribution sampled is the one `generate` samples."""

from __future__ import annotations

import copy

import torch
from transformers import DynamicCache, GenerationConfig, StaticCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ..settings import GenerationSettings
from .kernels import ATTENTION, PackedLinear, SharedPrefix, pack_linears, plain_attention, use_grouped_attention

# generation settings this sampler honours (or that do not change what is sampled); any other one set to a
# non-default value, by the caller or by the model's own generation config, sends generation back to `generate`
_HANDLED = {
    "max_new_tokens",
    "max_length",
    "do_sample",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "cache_implementation",
    "disable_compile",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "output_scores",
    "output_logits",
    "return_dict_in_generate",
    "transformers_version",
}


def effective_config(model, config: GenerationConfig) -> GenerationConfig:
    """`config` completed as `generate` completes it: unset fields from the model's own generation config."""
    merged = copy.deepcopy(config)
    own = getattr(model, "generation_config", None)
    if own is not None:
        merged.update(**own.to_dict(), defaults_only=True, allow_custom_entries=True)
        merged.update(**own._get_default_generation_params(), defaults_only=True)
    return merged


def supports(model, config: GenerationConfig) -> str:
    """Why this sampler cannot serve the model and settings ('' when it can)."""
    if not plain_attention(model.config):
        return "an encoder-decoder, sliding-window or linear-attention model"
    merged, plain = effective_config(model, config), GenerationConfig()
    plain.update(**plain._get_default_generation_params(), defaults_only=True)
    extra = [
        k
        for k, v in merged.to_dict().items()
        if k not in _HANDLED and not k.startswith("_") and v not in (None, getattr(plain, k, None))
    ]
    return f"generation settings {extra}" if extra else ""


def generate_kwargs(settings: GenerationSettings, tokenizer) -> dict:
    kwargs = dict(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        repetition_penalty=settings.repetition_penalty,
        pad_token_id=tokenizer.pad_token_id,
    )
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        if settings.min_p > 0:
            kwargs["min_p"] = settings.min_p
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generation_config(settings: GenerationSettings, tokenizer) -> GenerationConfig:
    return GenerationConfig(**generate_kwargs(settings, tokenizer))


def prepare(model) -> None:
    """Decoding layout, once per model: grouped one-query attention and, on a bf16 CPU, oneDNN-packed weights.

    An inference copy never changes, so its Linear weights are dropped once packed: the packed copy is the only
    one held."""
    if getattr(model, "_decoding_ready", False):
        return
    use_grouped_attention(model)
    if pack_linears(model):
        for module in model.modules():
            if isinstance(module, PackedLinear):
                module.weight = None
    model._decoding_ready = True


def seeded(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def processors(config: GenerationConfig) -> LogitsProcessorList:
    """The logits processors `generate` would apply for these settings, in its order."""
    out = LogitsProcessorList()
    if config.repetition_penalty not in (None, 1.0):
        out.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty))
    if config.temperature not in (None, 1.0):
        out.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        out.append(TopKLogitsWarper(config.top_k))
    if config.top_p is not None and config.top_p < 1.0:
        out.append(TopPLogitsWarper(config.top_p))
    if config.min_p:
        out.append(MinPLogitsWarper(config.min_p))
    return out


def draw(
    scores: torch.Tensor, generator: torch.Generator | None = None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """One token per row from softmax(scores): inverse CDF with a single uniform per row (drawn, or given)."""
    cdf = scores.float().softmax(-1).cumsum(-1)
    if uniforms is None:
        uniforms = torch.rand(scores.size(0), generator=generator, device=scores.device)
    u = uniforms[:, None] * cdf[:, -1:]
    token = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    over = token >= scores.size(-1)  # u rounded up to the total: take the last token with any probability
    if bool(over.any()):
        token = torch.where(over, (cdf < cdf[:, -1:]).sum(-1), token)
    return token


PREFILL_WASTE = 0.2  # prompts prefilled together pad at most this share of their own tokens
PREFILL_TOKENS = 16_384  # and hold at most this many tokens, padding included


def prefill_chunks(lengths: list[int]) -> list[list[int]]:
    """Prompt indices prefilled together: ascending length, little padding, a bounded number of tokens."""
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        rows = out[-1] if out else None
        if rows:
            padded = (len(rows) + 1) * lengths[i]  # ascending: the newcomer is the longest
            real = sum(lengths[j] for j in rows) + lengths[i]
            if padded <= (1 + PREFILL_WASTE) * real and padded <= PREFILL_TOKENS:
                rows.append(i)
                continue
        out.append([i])
    return out


def _kv(cache) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]


def _widened(x: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """Zeros shaped like a layer's keys or values for `rows` prompts of `width` tokens."""
    return x.new_zeros(rows, *x.shape[1:-2], width, x.size(-1))


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded as TRL pads prompts for `generate`, with their attention mask.

    Written here rather than imported from TRL: importing trl adds seconds to every `generate` and `eval`."""
    width = max(map(len, rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def sample(
    model, prompt_ids: list[list[int]], config: GenerationConfig, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Completion token ids for each prompt (ending with EOS when one was drawn), as `generate` samples them."""
    decoder = Decoder(model, prompt_ids, config, generator)
    while decoder.step():
        pass
    return decoder.completions()


class Decoder:
    """Rows decoding together on one model: built = prompts prefilled, then each `step()` adds a token per row.

    `generator` draws every row from one stream (training); `generators` gives each row its own (the Compare tab
    and the batch comparison), so a row's text does not depend on which rows share its batch. `share=False` copies
    each prompt's K/V to its rows instead of sharing it (the reference the shared path is tested against)."""

    @torch.inference_mode()
    def __init__(
        self,
        model,
        prompt_ids: list[list[int]],
        config: GenerationConfig,
        generator: torch.Generator | None = None,
        generators: list[torch.Generator] | None = None,
        share: bool = True,
    ):
        config = effective_config(model, config)
        self.model, self.generator, self.generators = model, generator, generators
        device, self.pad_id = model.device, config.pad_token_id if config.pad_token_id is not None else 0
        self.eos = torch.tensor(sorted(_as_list(config.eos_token_id)), dtype=torch.long, device=device)
        unique = list(dict.fromkeys(tuple(p) for p in prompt_ids))
        row = {p: i for i, p in enumerate(unique)}
        inverse = torch.tensor([row[tuple(p)] for p in prompt_ids], device=device)
        ids, mask = left_pad([list(p) for p in unique], self.pad_id, device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)
        logits, keys, values = self._prefill(model, [list(p) for p in unique], ids.size(1))
        self.logits = logits[inverse]
        n, self.width, self.new = len(prompt_ids), ids.size(1), config.max_new_tokens
        # rows sharing a prompt read its K/V once (`SharedPrefix`), where attention is ours and K/V are float32: a
        # decode step took 7-13% less time that way, while bf16 K/V, half the bytes, saved no more than the extra
        # ops cost (parity with one prompt, 4% slower with two; docs/performance.md)
        self.shared = None
        if (
            share
            and len(unique) < n
            and model.config._attn_implementation == ATTENTION
            and keys[0].dtype == torch.float32
        ):
            self.shared = SharedPrefix(keys, values, mask.bool(), inverse)
            # the rows' cache starts at their first new token: no prompt columns before it
            self.cache, self.width = StaticCache(config=model.config, max_cache_len=self.new), 0
            self.attend = torch.zeros((n, self.new), dtype=torch.bool, device=device)
        else:
            self.cache = StaticCache(config=model.config, max_cache_len=self.width + self.new)
            for layer, k, v in zip(self.cache.layers, keys, values, strict=True):
                layer.update(k[inverse], v[inverse])
            self.attend = torch.cat([mask[inverse], torch.zeros((n, self.new), dtype=torch.long, device=device)], 1)
            self.attend = self.attend.bool()
        del keys, values
        self.position = positions[inverse, -1:] + 1
        self.history = ids[inverse]  # what the repetition penalty looks back on, as in `generate`
        self.process, self.do_sample = processors(config), config.do_sample
        self.out = torch.full((n, self.new), self.pad_id, dtype=torch.long, device=device)
        self.rows = torch.arange(n, device=device)  # the output row of each batch row
        self.alive = torch.ones(n, dtype=torch.bool, device=device)
        self.length = torch.zeros(n, dtype=torch.long, device=device)  # tokens written per output row
        self.t, self.done = 0, False

    def _prefill(self, model, prompts: list[list[int]], width: int):
        """Last-position logits and the KV cache of every prompt, left-padded to `width`.

        Prompts of similar length are prefilled together (`prefill_chunks`): padding 24 posts to the longest one
        spent 39% of the prefill on pad tokens. Each chunk's cache is written into the full width at the right."""
        grouped = model.config._attn_implementation == ATTENTION
        if grouped:  # a long query: torch's sdpa (flash) kernel is quicker there (0.64 s against 0.78 s, 716 tokens)
            model.set_attn_implementation("sdpa")
        logits, keys, values = None, [], []
        try:
            for chunk in prefill_chunks([len(p) for p in prompts]):
                ids, mask = left_pad([prompts[i] for i in chunk], self.pad_id, model.device)
                cache = DynamicCache(config=model.config)
                out = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp_(min=0),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                ).logits[:, -1]
                if chunk == list(range(len(prompts))):  # one chunk, in order: its cache is the whole cache
                    return out, *_kv(cache)
                if logits is None:
                    logits = out.new_empty(len(prompts), out.size(-1))
                    keys, values = ([_widened(x, len(prompts), width) for x in xs] for xs in _kv(cache))
                rows = torch.tensor(chunk, device=model.device)
                logits[rows] = out
                at = width - ids.size(1)
                for layer, k, v in zip(cache.layers, keys, values, strict=True):
                    k[rows, :, at:] = layer.keys
                    v[rows, :, at:] = layer.values
        finally:
            if grouped:
                model.set_attn_implementation(ATTENTION)
        return logits, keys, values

    def _draw(self, scores: torch.Tensor) -> torch.Tensor:
        if not self.do_sample:
            return scores.argmax(-1)
        if self.generators is None:
            return draw(scores, self.generator)
        gens = [self.generators[r] for r in self.rows.tolist()]
        return draw(scores, None, torch.cat([torch.rand(1, generator=g, device=scores.device) for g in gens]))

    @torch.inference_mode()
    def step(self) -> bool:
        """One token for every live row; False once all rows are done (EOS or max_new_tokens)."""
        if self.done:
            return False
        t, alive = self.t, self.alive
        scores = self.process(self.history, self.logits.float()) if self.process else self.logits.float()
        token = self._draw(scores)
        self.out[self.rows[alive], t] = token[alive]
        self.length[self.rows[alive]] = t + 1
        alive &= ~torch.isin(token, self.eos)
        live, self.t = int(alive.sum()), t + 1
        if live == 0 or t == self.new - 1:
            self.done = True
            return False
        if live <= 0.75 * alive.numel():  # drop finished rows from the batch and from its KV cache
            keep = alive.nonzero().squeeze(-1)
            self.rows, token, self.attend, self.position, self.history = (
                x[keep] for x in (self.rows, token, self.attend, self.position, self.history)
            )
            for layer in self.cache.layers:
                if layer.is_initialized:  # a SharedPrefix cache holds nothing before the first new token
                    layer.keys, layer.values = layer.keys[keep], layer.values[keep]
            if self.shared is not None:
                self.shared.keep(keep)
            self.alive = alive = alive[keep]
        if self.process:
            self.history = torch.cat([self.history, token[:, None]], 1)
        self.attend[:, self.width + t] = True
        shared = {}
        if self.shared is not None:
            self.shared.length, shared = t + 1, {"shared_prefix": self.shared}
        self.logits = self.model(
            input_ids=token[:, None],
            attention_mask=self.attend[:, None, None, :],
            position_ids=self.position + t,
            past_key_values=self.cache,
            use_cache=True,
            **shared,
        ).logits[:, -1]
        return True

    def completions(self) -> list[list[int]]:
        """Each row's tokens so far, up to and including its EOS."""
        return [_until_eos(r[:n], self.eos) for r, n in zip(self.out.tolist(), self.length.tolist(), strict=True)]


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _until_eos(tokens: list[int], eos: torch.Tensor) -> list[int]:
    stops = set(eos.tolist())
    for i, tok in enumerate(tokens):
        if tok in stops:
            return tokens[: i + 1]
    return tokens
