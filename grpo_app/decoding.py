"""Sampling GRPO's completions without `generate`'s per-token overheads (the `fast_decode` lever).

One decode step of SmolLM2-135M for 16 sequences took ~150 ms inside `generate` on the 2-core dev
machine, and most of it was not the model's matmuls: ~75 ms in torch's CPU flash-attention kernel
(tiled for long queries, slow for a single one), ~20 ms re-concatenating the growing KV cache, and
~16 ms in `torch.multinomial`. GRPO also sends every prompt `num_generations` times. So here:
- each distinct prompt is prefilled once and its KV cache copied to the rows that share it;
- the KV cache is preallocated (transformers' `StaticCache`) and written in place;
- one-token attention is two grouped matmuls that never repeat K/V across query heads;
- a token is drawn with one uniform per row against the cumulative distribution (exact);
- finished rows leave the batch and its KV cache;
- on a bf16 CPU the weights are laid out for oneDNN once per generation (`PackedLinear`).
Logits go through transformers' own processors (repetition penalty, temperature, top-k, top-p,
min-p), so the distribution sampled is the one `generate` samples.
"""

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
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface
from trl.trainer.utils import pad

ATTENTION = "grpo_studio_grouped"

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


def grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention with each K/V head serving its group of query heads in place (K/V never repeated).

    Used for decoding (where torch's CPU flash kernel is slow for a single query) and for training
    on a CPU (measured ~20% quicker per micro-batch than sdpa, and no repeat_kv copies to backprop).
    """
    unusual = any(kwargs.get(k) is not None for k in ("softcap", "s_aux", "sliding_window"))
    if (
        (dropout and module.training)
        or unusual
        or not getattr(module, "is_causal", True)
        or value.size(-1) != query.size(-1)
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    b, heads, q, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    group = heads // kv_heads
    scores = torch.matmul(query.reshape(b, kv_heads, group * q, dim), key.transpose(-1, -2))
    scores = scores.view(b, kv_heads, group, q, keys).float() * (scaling if scaling is not None else dim**-0.5)
    if attention_mask is None and q > 1:  # sdpa_mask leaves plain causal masks to `is_causal`
        attention_mask = torch.ones(q, keys, dtype=torch.bool, device=query.device).tril(keys - q)
    if attention_mask is not None:  # boolean, True where attended; finite, as a padding query sees no key
        scores = scores.masked_fill(~attention_mask.reshape(-1, 1, 1, q, keys), torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1).to(value.dtype).view(b, kv_heads, group * q, keys)
    out = torch.matmul(probs, value)
    return out.view(b, heads, q, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, grouped_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def plain_attention(config) -> bool:
    """Whether every layer is full attention with a plain KV cache (no sliding window, no linear layers)."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    cache = StaticCache(config=config, max_cache_len=8)
    return not any(cache.is_sliding) and not any(getattr(cache, "is_linear", []))


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


def use_grouped_attention(model) -> None:
    model.set_attn_implementation(ATTENTION)


class PackedLinear(torch.nn.Module):
    """A bf16 Linear whose weight is laid out once for oneDNN, as inductor does when it freezes a model.

    On the 2-core dev machine a decode step's 211 matmuls (16 rows each) ran ~30% quicker this way
    than through `F.linear`. `repack()` after the weight changes (once per generation).
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.weight, self.bias, self.out_features = linear.weight, linear.bias, linear.out_features
        self.repack()

    def repack(self) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.size(-1)), self.packed, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)


def pack_linears(model) -> bool:
    """Swap every bf16 Linear of a CPU model for a PackedLinear; False (nothing changed) where oneDNN can't."""
    mkldnn = torch.ops.mkldnn
    ok = (
        model.device.type == "cpu"
        and model.dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and all(
            hasattr(mkldnn, op) for op in ("_linear_pointwise", "_reorder_linear_weight", "_is_mkldnn_bf16_supported")
        )
        and mkldnn._is_mkldnn_bf16_supported()
    )
    if not ok:
        return False
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, PackedLinear(child))
    return True


def repack(model) -> None:
    for module in model.modules():
        if isinstance(module, PackedLinear):
            module.repack()


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


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded as TRL pads prompts for `generate`, with their attention mask."""
    tensors = [torch.tensor(r, dtype=torch.long) for r in rows]
    ids = pad(tensors, padding_value=pad_id, padding_side="left")
    mask = pad([torch.ones_like(t) for t in tensors], padding_value=0, padding_side="left")
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
    and the batch comparison), so a row's text does not depend on which rows share its batch."""

    @torch.inference_mode()
    def __init__(
        self,
        model,
        prompt_ids: list[list[int]],
        config: GenerationConfig,
        generator: torch.Generator | None = None,
        generators: list[torch.Generator] | None = None,
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
        prefill = DynamicCache(config=model.config)
        grouped = model.config._attn_implementation == ATTENTION
        if grouped:  # a long query: torch's sdpa (flash) kernel is quicker there (0.64 s against 0.78 s, 716 tokens)
            model.set_attn_implementation("sdpa")
        try:
            self.logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=prefill,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1][inverse]
        finally:
            if grouped:
                model.set_attn_implementation(ATTENTION)
        n, self.width, self.new = len(prompt_ids), ids.size(1), config.max_new_tokens
        self.cache = StaticCache(config=model.config, max_cache_len=self.width + self.new)
        for layer, done_layer in zip(self.cache.layers, prefill.layers, strict=True):
            layer.update(done_layer.keys[inverse], done_layer.values[inverse])
        del prefill
        self.attend = torch.cat([mask[inverse], torch.zeros((n, self.new), dtype=torch.long, device=device)], 1).bool()
        self.position = positions[inverse, -1:] + 1
        self.history = ids[inverse]  # what the repetition penalty looks back on, as in `generate`
        self.process, self.do_sample = processors(config), config.do_sample
        self.out = torch.full((n, self.new), self.pad_id, dtype=torch.long, device=device)
        self.rows = torch.arange(n, device=device)  # the output row of each batch row
        self.alive = torch.ones(n, dtype=torch.bool, device=device)
        self.length = torch.zeros(n, dtype=torch.long, device=device)  # tokens written per output row
        self.t, self.done = 0, False

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
                layer.keys, layer.values = layer.keys[keep], layer.values[keep]
            self.alive = alive = alive[keep]
        if self.process:
            self.history = torch.cat([self.history, token[:, None]], 1)
        self.attend[:, self.width + t] = True
        self.logits = self.model(
            input_ids=token[:, None],
            attention_mask=self.attend[:, None, None, :],
            position_ids=self.position + t,
            past_key_values=self.cache,
            use_cache=True,
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
