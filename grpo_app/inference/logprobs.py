"""Per-token log-probs of GRPO completions, computed where they are needed and nowhere else.

Profiled on the 2-core dev machine (one micro-batch: 8 completions of <= 96 tokens for one prompt),
TRL's path spent as long around the LM head as in all 30 transformer layers: full-vocabulary fp32
copies, a log-softmax, an entropy pass and a zero-filled gradient of [8, 96, 49152] floats, most
of it for positions after the completion ended. Here:
- the LM head runs on the hidden states of real completion tokens only (padding is skipped);
- one autograd function takes log-softmax at the sampled token, and the entropy, chunk by chunk,
  and in backward writes d logp / d logits = onehot - softmax directly, chunk by chunk;
- with `shared` each distinct prompt is forwarded once and its KV cache reused by its completions,
  and completions run in groups of similar length, so short ones are not padded to the longest.
Padded positions get log-prob 0 and entropy 0; TRL masks them out of every loss and metric.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import DynamicCache

# A prompt forward with more tokens than this keeps only its keys and values for backward and runs again there
# (torch's checkpoint): SmolLM2-135M kept ~0.6 MB of activations per prompt token, and the quick preset's peak
# memory followed its longest prompt. Measured 2026-11-30: a 768-token document's log-prob pass kept 0.5 GB less
# and took ~25% longer; 6% of the quick preset's prompts are this long, so its steps take ~1.5% longer.
CHECKPOINT_PROMPT_TOKENS = 384

# config fields of models whose forward rescales or caps the LM head's output: those keep TRL's path
_SCALED_HEADS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "output_multiplier_scale",
    "lm_head_multiplier",
    "output_multiplier",
)


def lean_parts(model) -> tuple[nn.Module, nn.Module] | None:
    """(decoder, lm_head) of a plain causal LM (PEFT-wrapped or not); None where the head is not a bare Linear."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder, head = causal.get_decoder(), causal.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    config = getattr(causal, "config", None)
    if decoder is None or head is None or config is None or not hasattr(head, "weight"):
        return None
    configs = [config, config.get_text_config()] if hasattr(config, "get_text_config") else [config]
    if any(getattr(c, name, None) not in (None, 1.0) for c in configs for name in _SCALED_HEADS):
        return None
    return decoder, head


class _TokenLogProbs(torch.autograd.Function):
    """log softmax(logits / T)[token] per row, plus the entropy (no gradient), in row chunks."""

    @staticmethod
    def forward(ctx, logits, tokens, temperature: float, chunk: int):
        n = logits.size(0)
        logps = logits.new_empty(n, dtype=torch.float32)
        entropy = logits.new_empty(n, dtype=torch.float32)
        lse = logits.new_empty(n, dtype=torch.float32)
        for s in range(0, n, chunk):
            x = logits[s : s + chunk].float() / temperature  # a new tensor, even when logits are fp32
            lse[s : s + chunk] = torch.logsumexp(x, -1)
            logps[s : s + chunk] = x.gather(-1, tokens[s : s + chunk, None]).squeeze(-1) - lse[s : s + chunk]
            x = x.sub_(lse[s : s + chunk, None])  # log-probabilities
            entropy[s : s + chunk] = -(x.exp() * x).sum(-1)
        ctx.save_for_backward(logits, tokens, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(entropy)
        return logps, entropy

    @staticmethod
    def backward(ctx, grad_logps, _grad_entropy):
        logits, tokens, lse = ctx.saved_tensors
        grad = torch.empty_like(logits)
        for s in range(0, logits.size(0), ctx.chunk):
            g = grad_logps[s : s + ctx.chunk, None] / ctx.temperature
            p = (logits[s : s + ctx.chunk].float() / ctx.temperature).sub_(lse[s : s + ctx.chunk, None]).exp_()
            p = p.mul_(-g).scatter_add_(-1, tokens[s : s + ctx.chunk, None], g)
            grad[s : s + ctx.chunk] = p
        return grad, None, None, None


def token_logprobs(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0, chunk: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-prob of each row's token, entropy of each row) for logits [N, V] and tokens [N]."""
    return _TokenLogProbs.apply(logits, tokens, float(temperature), chunk)


def completion_hidden(
    decoder, ids: torch.Tensor, mask: torch.Tensor, logits_to_keep: int, shared: bool
) -> torch.Tensor:
    """Final hidden states [n, logits_to_keep, H] at the positions that predict the completion tokens.

    With `shared`, each distinct prompt is forwarded once: causal attention makes a prompt's states
    independent of what follows, and autograd sums the gradients flowing back from every completion.
    Positions follow TRL's convention (the column index, left padding included) either way.
    """
    n, width = ids.size(0), ids.size(1) - logits_to_keep
    if shared:
        unique, inverse = torch.unique(torch.cat([ids[:, :width], mask[:, :width]], 1), dim=0, return_inverse=True)
        shared = unique.size(0) < n
    if not shared:
        return decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, width - 1 : -1]
    first = torch.full((unique.size(0),), n, device=ids.device).scatter_reduce_(
        0, inverse, torch.arange(n, device=ids.device), "amin"
    )
    prompt_mask = mask[first, :width]
    skip = int((prompt_mask.cumsum(-1) == 0).sum(-1).min())  # left padding common to every prompt
    positions = torch.arange(skip, ids.size(1) - 1, device=ids.device)[None]
    prompt = (decoder, ids[first, skip:width], prompt_mask[:, skip:], positions[:, : width - skip])
    if torch.is_grad_enabled() and prompt[1].numel() > CHECKPOINT_PROMPT_TOKENS:
        head, kv = checkpoint(_prompt_states, *prompt, use_reentrant=False)
    else:
        head, kv = _prompt_states(*prompt)
    if logits_to_keep == 1:
        return head[inverse]
    # completions are right-padded: each group of rows runs only as far as its own longest completion
    lengths = mask[:, width:].sum(-1).tolist()
    tail = head.new_zeros((n, logits_to_keep - 1, head.size(-1)))
    for rows in length_groups(lengths):
        steps = max(lengths[i] for i in rows) - 1  # the first completion token is predicted by `head`
        if steps < 1:
            continue
        idx = torch.tensor(rows, device=ids.device)
        expanded = DynamicCache(config=decoder.config)
        for i, (keys, values) in enumerate(kv):
            expanded.update(keys[inverse[idx]], values[inverse[idx]], i)
        tail[idx, :steps] = decoder(
            input_ids=ids[idx, width : width + steps],
            attention_mask=mask[idx, skip : width + steps],
            position_ids=positions[:, width - skip : width - skip + steps],
            past_key_values=expanded,
            use_cache=True,
        ).last_hidden_state
    return torch.cat([head[inverse], tail], 1)


def _prompt_states(decoder, ids, mask, positions) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The last prompt position's hidden state and each layer's (keys, values) for the completions to attend to."""
    cache = DynamicCache(config=decoder.config)
    out = decoder(input_ids=ids, attention_mask=mask, use_cache=True, position_ids=positions, past_key_values=cache)
    return out.last_hidden_state[:, -1:], [(layer.keys, layer.values) for layer in cache.layers]


def length_groups(lengths: list[int], overhead: int = 16) -> list[list[int]]:
    """Row indices grouped so that sum(rows x longest) + overhead x groups is least (an exact DP).

    `overhead` is a forward call's fixed cost in token-rows (~16 measured on a 2-core CPU).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    longest = [lengths[i] for i in order]
    best, cut = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        for i in range(j):  # one group: sorted rows i..j-1, padded to longest[i]
            cost = best[i] + (j - i) * longest[i] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def completion_logprobs(
    parts: tuple[nn.Module, nn.Module],
    ids: torch.Tensor,
    mask: torch.Tensor,
    logits_to_keep: int,
    temperature: float,
    shared: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probs, entropies), each [n, logits_to_keep], of the completion tokens; 0 where padded."""
    decoder, lm_head = parts
    hidden = completion_hidden(decoder, ids, mask, logits_to_keep, shared)
    valid = mask[:, -logits_to_keep:].bool()
    logps, entropy = token_logprobs(lm_head(hidden[valid]), ids[:, -logits_to_keep:][valid], temperature)
    zeros = torch.zeros(valid.shape, dtype=torch.float32, device=ids.device)
    return zeros.masked_scatter(valid, logps), zeros.masked_scatter(valid, entropy)
