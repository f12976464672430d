"""Kernels of the fast path: attention that serves each K/V head's query group in place, and Linear weights
laid out once for oneDNN. Used by the decoder (inference and GRPO's sampling) and by CPU training.

One decode step of SmolLM2-135M for 16 sequences took ~150 ms inside `generate` on the 2-core dev machine, ~75 ms
of it in torch's CPU flash-attention kernel (tiled for long queries, slow for a single one): one-token attention
here is two grouped matmuls that never repeat K/V. On a bf16 CPU the decode step's matmuls ran ~30% quicker with
weights packed for oneDNN (`PackedLinear`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import StaticCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

ATTENTION = "grpo_studio_grouped"
# Above this many attention scores (batch x heads x queries x keys), a forward that will be backpropagated runs
# torch's fused kernel: this one keeps fp32 scores and probabilities for backward, ~30 MB a layer for one 768-token
# SmolLM2 prompt (~0.9 GB over 30 layers), the fused kernel only its output and log-sum-exp. Measured 2026-11-30 on
# the 2-core machine: as fast on long prompts, ~10% slower on short ones, hence the threshold.
LONG_ATTENTION = 2**20


def grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention with each K/V head serving its group of query heads in place (K/V never repeated).

    Used for decoding (where torch's CPU flash kernel is slow for a single query) and for training
    on a CPU (measured ~20% quicker per micro-batch than sdpa, and no repeat_kv copies to backprop);
    a long forward with gradients goes to torch's fused kernel, K/V heads shared too (LONG_ATTENTION).
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
    if kwargs.get("shared_prefix") is not None and q == 1:
        return _prefix_attention(module, query, key, value, attention_mask, kwargs["shared_prefix"], scaling)
    kv_heads, keys = key.shape[1], key.shape[2]
    if attention_mask is None and q > 1 and q != keys:  # queries after cached keys: causal from the end
        attention_mask = torch.ones(q, keys, dtype=torch.bool, device=query.device).tril(keys - q)[None, None]
    if torch.is_grad_enabled() and b * heads * q * keys > LONG_ATTENTION:
        out = torch.nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            is_causal=attention_mask is None and q > 1,
            scale=scaling,
            enable_gqa=True,
        )
        return out.transpose(1, 2).contiguous(), None
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


@dataclass
class SharedPrefix:
    """Prompts' K/V held once while the rows sampling from them decode (GRPO samples each prompt
    `num_generations` times): each layer's cache then holds only the new tokens, and a decode step reads a
    prompt's keys once for all of its rows instead of once per row (for the quick preset's 8 rows of a ~700-token
    prompt, 220 MB a step in float32, next to 540 MB of weights). The decoder uses it for float32 K/V only."""

    keys: list[torch.Tensor]  # per layer: (prompts, kv heads, width, dim), left-padded
    values: list[torch.Tensor]
    mask: torch.Tensor  # (prompts, width), True on real tokens
    prompt: torch.Tensor  # (rows,): each row's prompt
    length: int = 0  # new tokens in the rows' own cache, the one being decoded included
    _slots: tuple | None = field(default=None, repr=False)

    def keep(self, rows: torch.Tensor) -> None:
        self.prompt, self._slots = self.prompt[rows], None

    def slots(self) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Each row's place among its prompt's rows, the most rows any prompt has, and each row's prompt mask: the
        same for every layer, so worked out once per set of rows."""
        if self._slots is None:
            seen = torch.nn.functional.one_hot(self.prompt, self.mask.size(0)).cumsum(0)
            rank = seen.gather(1, self.prompt[:, None]).squeeze(1) - 1
            self._slots = (rank, int(rank.max()) + 1, self.mask[self.prompt])
        return self._slots


def _by_prompt(x: torch.Tensor, prefix: SharedPrefix, rank: torch.Tensor, most: int) -> torch.Tensor:
    """(rows, kv, group, n) -> (prompts, kv, most * group, n): each prompt's rows side by side, zero-padded."""
    rows, kv, group, n = x.shape
    if prefix.mask.size(0) == 1:  # one prompt (the quick preset's steps): its rows in order, nothing to scatter
        return x.transpose(0, 1).reshape(1, kv, rows * group, n)
    out = x.new_zeros(prefix.mask.size(0), most, kv, group, n)
    out[prefix.prompt, rank] = x
    return out.permute(0, 2, 1, 3, 4).reshape(-1, kv, most * group, n)


def _by_row(x: torch.Tensor, prefix: SharedPrefix, rank: torch.Tensor, most: int, group: int) -> torch.Tensor:
    """The inverse of `_by_prompt`: (prompts, kv, most * group, n) -> (rows, kv, group, n)."""
    prompts, kv, _, n = x.shape
    if prompts == 1:
        return x.view(kv, most, group, n).transpose(0, 1)
    return x.view(prompts, kv, most, group, n).permute(0, 2, 1, 3, 4)[prefix.prompt, rank]


def _prefix_attention(module, query, key, value, attention_mask, prefix: SharedPrefix, scaling):
    """One new token per row attending to its prompt's shared K/V and to its own new tokens; the same sum as
    attention over the two concatenated, in two parts."""
    b, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    group, new = heads // kv_heads, prefix.length
    prompt_keys, prompt_values = prefix.keys[module.layer_idx], prefix.values[module.layer_idx]
    rank, most, prompt_mask = prefix.slots()
    q = query.view(b, kv_heads, group, dim)
    shared = torch.matmul(_by_prompt(q, prefix, rank, most), prompt_keys.transpose(-1, -2))
    scores = torch.cat(
        [_by_row(shared, prefix, rank, most, group), torch.matmul(q, key[:, :, :new].transpose(-1, -2))], -1
    )
    scores = scores.float() * (scaling if scaling is not None else dim**-0.5)
    seen = torch.cat([prompt_mask, attention_mask.reshape(b, -1)[:, :new]], -1)
    scores = scores.masked_fill(~seen[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1).to(value.dtype)
    width = prompt_keys.size(2)
    out = _by_row(
        torch.matmul(_by_prompt(probs[..., :width], prefix, rank, most), prompt_values), prefix, rank, most, group
    )
    out = out + torch.matmul(probs[..., width:], value[:, :, :new])
    return out.reshape(b, 1, heads, dim), None


AttentionInterface.register(ATTENTION, grouped_attention)

AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def plain_attention(config) -> bool:
    """Whether every layer is full attention with a plain KV cache (no sliding window, no linear layers)."""
    if getattr(config, "is_encoder_decoder", False):
        return False
    cache = StaticCache(config=config, max_cache_len=8)
    return not any(cache.is_sliding) and not any(getattr(cache, "is_linear", []))


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

    def repack(self, weight: torch.Tensor | None = None) -> None:
        """Lay out `weight` (default: this layer's own) for oneDNN; the packed copy is the one used."""
        source = self.weight if weight is None else weight
        self.packed = torch.ops.mkldnn._reorder_linear_weight(source.detach(), 16)

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


class _UpcastMatmul(torch.autograd.Function):
    """x @ W.T for a bf16 x and an fp32 W, as PEFT computes it (x cast to fp32 first), keeping x itself for
    backward rather than its fp32 copy."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.nn.functional.linear(x.to(weight.dtype), weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.to(weight.dtype)
        grad_x = grad.matmul(weight).to(x.dtype) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = grad.reshape(-1, grad.size(-1)).T.matmul(x.reshape(-1, x.size(-1)).to(weight.dtype))
        return grad_x, grad_w


class UpcastLinear(torch.nn.Linear):
    """A LoRA A matrix (fp32) fed the bf16 input of its layer directly (see `lora_inputs_kept_bf16`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):  # autocast casts both, and keeps x itself
            return super().forward(x)
        if x.dtype == self.weight.dtype or self.bias is not None:
            return super().forward(x.to(self.weight.dtype))
        return _UpcastMatmul.apply(x, self.weight)


def lora_inputs_kept_bf16(model) -> int:
    """Let each plain LoRA layer keep its bf16 input for backward instead of an fp32 copy per adapter.

    PEFT casts a layer's input to the adapter's fp32 before A, and autograd keeps that copy: q, k and v each keep
    their own of one shared input (~0.45 GB for one 768-token SmolLM2 prompt). The product is the same; the
    kept input is the bf16 tensor the three share. Returns the number of layers changed (dropout 0 only).
    """
    from peft.tuners.lora import Linear as LoraLinear

    changed = 0
    for module in model.modules():
        if type(module) is not LoraLinear or module.lora_variant:
            continue
        if not all(isinstance(d, torch.nn.Identity) for d in module.lora_dropout.values()):
            continue
        for a in module.lora_A.values():
            if type(a) is torch.nn.Linear:
                a.__class__ = UpcastLinear
        module.cast_input_dtype_enabled = False
        changed += 1
    return changed
