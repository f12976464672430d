"""The CPU fast path: a GRPOTrainer whose generation and log-probs cost less, each lever a config switch.

Measured on the 2-core dev machine (docs/performance.md); with every lever off this is TRL's trainer.
- `logits_head`: log-probs through `inference/logprobs.py`: the LM head only on real completion tokens, and one
  chunked log-softmax/entropy/backward instead of TRL's chunked kernel (whose torch fallback, with no
  Triton on a CPU, took ~7 of 19 s per quick step) and its full-vocabulary fp32 copies.
- `shared_prefix`: each distinct prompt is forwarded once per micro-batch and its KV cache shared by
  its `num_generations` completions (exact; gradients flow back through the shared cache); where
  the update cannot tell, a generation batch's rows are grouped by prompt before TRL splits it.
- `merged_generation`: generation runs on a plain copy of the base whose weights are refreshed from
  W + scale * B @ A before each generation: no LoRA matmuls per decoded token, and no bf16 drift, as
  the base itself is never merged into.
- `fast_decode`: that copy is sampled by `inference.decoder.sample` (prompt prefilled once, preallocated KV
  cache, grouped one-token attention, finished rows dropped, weights pre-packed for oneDNN on a
  bf16 CPU) instead of `generate`.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context

from .inference import decoder, kernels, logprobs

_MULTIMODAL = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


class FastGRPOTrainer(GRPOTrainer):
    """GRPOTrainer plus the levers above; with all of them off it is TRL's trainer unchanged."""

    def __init__(
        self,
        *args,
        logits_head: bool = False,
        merged_generation: bool = False,
        shared_prefix: bool = False,
        fast_decode: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.logits_head, self.merged_generation = logits_head, merged_generation
        if logits_head:  # training-side memory: the same log-probs, one bf16 input kept per LoRA layer
            kernels.lora_inputs_kept_bf16(self.model)
        self.shared_prefix = shared_prefix and kernels.plain_attention(self.model.config)
        self.fast_decode = (
            fast_decode
            and merged_generation
            and not self.use_vllm
            and (not self.use_transformers_continuous_batching)
            and not decoder.supports(self.model, self.generation_config)
        )
        self._gen_model = None
        self.set_aside = []  # levers asked for that this model or these settings cannot use, with why
        if shared_prefix and not self.shared_prefix:
            self.set_aside.append("speed.shared_prefix steps aside: the model has sliding-window or linear attention")
        why = decoder.supports(self.model, self.generation_config)
        if fast_decode and merged_generation and why and not self.use_vllm:
            self.set_aside.append(f"speed.fast_decode steps aside: {why}; sampling uses transformers' generate")

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **kwargs,
    ):
        parts = logprobs.lean_parts(model)
        if (
            not self._lean_logprobs()
            or parts is None
            or compute_aux_loss
            or any(kwargs.get(k) is not None for k in _MULTIMODAL)
        ):
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **kwargs,
            )
        batch_size = batch_size or input_ids.size(0)
        share = self.shared_prefix and not getattr(model, "is_gradient_checkpointing", False)
        all_logps, all_entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            with self.accelerator.autocast():
                logps, entropies = logprobs.completion_logprobs(
                    parts, ids, mask, logits_to_keep, self.temperature, share
                )
            all_logps.append(logps)
            all_entropies.append(entropies)
        return torch.cat(all_logps), torch.cat(all_entropies) if compute_entropy else None, None

    def _prepare_inputs(self, generation_batch):
        buffered = self._buffered_inputs
        inputs = super()._prepare_inputs(generation_batch)
        if self._buffered_inputs is not buffered and self._may_group_by_prompt():
            self._buffered_inputs = group_by_prompt(self._buffered_inputs)
            inputs = self._buffered_inputs[self._step % self.args.steps_per_generation]
        return inputs

    def _lean_logprobs(self) -> bool:
        """logprobs.py serves the loss unless it needs what it leaves out: an entropy gradient, an fp32 head."""
        return (
            self.logits_head
            and not getattr(self, "_entropy_bonus_enabled", False)
            and not getattr(self.args, "cast_lm_head_to_fp32", False)
        )

    def _may_group_by_prompt(self) -> bool:
        """Whether micro-batch membership is invisible to the update, so TRL's shuffle can be undone.

        True when one generation batch feeds exactly one optimizer step and the loss sums over
        micro-batches of equal size: not bnpo, whose normaliser is per micro-batch, nor an entropy
        mask or bonus or a router loss, which are per micro-batch too. Then grouping rows by prompt
        lets `shared_prefix` forward each prompt once per step instead of once per micro-batch.
        """
        a = self.args
        return (
            self.shared_prefix
            and self._lean_logprobs()
            and self.model.training
            and self.num_iterations == 1
            and a.steps_per_generation == a.gradient_accumulation_steps
            and self.loss_type != "bnpo"
            and a.top_entropy_quantile == 1.0
            and not getattr(self, "aux_loss_enabled", False)
        )

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
        if not self.merged_generation:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs
            )
        with self._merged_model_for_generation():
            if self.fast_decode and images is None and not multimodal_fields:
                with profiling_context(self, "grpo_studio.sample"):
                    return decoder.sample(self._gen_model, prompt_ids, self.generation_config), None
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs
            )

    def answer(self, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]] | None:
        """Greedy completions from the current weights on the decoding copy (held-out scoring between steps);
        None when the fast path is off (the caller falls back to `generate`)."""
        if not (self.merged_generation and self.fast_decode):
            return None
        config = copy.deepcopy(self.generation_config)
        config.do_sample, config.max_new_tokens = False, max_new_tokens
        config.temperature = config.top_p = config.top_k = config.min_p = None
        with self._merged_model_for_generation():
            return decoder.sample(self._gen_model, prompt_ids, config)

    @contextmanager
    def _merged_model_for_generation(self):
        """Swap in a plain model holding W + scale * B @ A for the length of one generation."""
        peft_model = self.accelerator.unwrap_model(self.model_wrapped)
        if self._gen_model is None:
            base = peft_model.get_base_model()
            # the copy shares every tensor with the policy (embeddings, norms, frozen weights: 270 MB for
            # SmolLM2-135M); only the LoRA-targeted layers get weights of their own, merged, in _sync_merged
            shared = {id(t): t for t in (*base.parameters(), *base.buffers())}
            self._gen_model = copy.deepcopy(base, memo=shared)
            # TRL's fused-head patch is an instance `forward` closing over the *original* model: drop it
            self._gen_model.__dict__.pop("forward", None)
            _strip_lora(self._gen_model)
            self._gen_model.eval()
            if self.fast_decode:
                kernels.use_grouped_attention(self._gen_model)
                kernels.pack_linears(self._gen_model)
        _sync_merged(peft_model, self._gen_model)
        wrapped = self.model_wrapped
        self.model_wrapped = self._gen_model
        try:
            yield
        finally:
            self.model_wrapped = wrapped


def group_by_prompt(batches: list[dict]) -> list[dict]:
    """The same rows re-split so that rows sharing a prompt sit in the same micro-batch where they can."""
    if (
        not batches
        or not isinstance(batches[0].get("prompt_ids"), torch.Tensor)
        or any(batches[0].get(k) is not None for k in _MULTIMODAL)
    ):
        return batches
    rows = [k for k, v in batches[0].items() if (isinstance(v, torch.Tensor) and v.ndim > 0) or isinstance(v, list)]
    whole = {
        k: torch.cat([b[k] for b in batches])
        if isinstance(batches[0][k], torch.Tensor)
        else [x for b in batches for x in b[k]]
        for k in rows
    }
    rank: dict[tuple, int] = {}
    keys = [rank.setdefault(tuple(p), len(rank)) for p in whole["prompt_ids"].tolist()]
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: keeps TRL's order within a prompt
    size = len(order) // len(batches)
    out = []
    for i, b in enumerate(batches):
        part = order[i * size : (i + 1) * size]
        index = torch.tensor(part)
        out.append(
            {
                **b,
                **{
                    k: whole[k][index.to(whole[k].device)]
                    if isinstance(whole[k], torch.Tensor)
                    else [whole[k][j] for j in part]
                    for k in rows
                },
            }
        )
    return out


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def _strip_lora(model) -> None:
    """Replace each LoRA wrapper in the copy by its base layer: a plain transformers model remains."""
    for name in list(_lora_layers(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).get_base_layer())


@torch.no_grad()
def _sync_merged(peft_model, gen_model) -> None:
    """gen weight = base weight + delta of the active adapter, computed fresh (no drift).

    A packed layer holds only its packed merged weight; a plain one gets its own tensor the first time, since
    the copy starts out sharing the policy's base weight, which must stay as it is."""
    for name, layer in _lora_layers(peft_model.get_base_model()).items():
        target = gen_model.get_submodule(name)
        base = layer.get_base_layer().weight
        delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
        merged = (base.float() + delta.float()).to(base.dtype)
        if isinstance(target, kernels.PackedLinear):
            target.repack(merged)
        else:
            if target.weight is base:
                target.weight = torch.nn.Parameter(torch.empty_like(base), requires_grad=False)
            target.weight.copy_(merged)
