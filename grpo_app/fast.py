"""The CPU fast path: a GRPOTrainer with cheaper log-probs and generation, each lever a config switch.

Measured on the 2-core dev machine (see README, Performance):
- `logits_head`: TRL 1.16 computes per-token log-probs with a chunked LM-head kernel; without Triton
  (any CPU) its torch fallback folds fp32 tiles across the whole vocabulary and took ~7 of 19 s per
  quick step. Projecting only the completion positions (`logits_to_keep`) and taking log-softmax on
  those logits is exact and far cheaper for small vocabularies x short completions.
- `merged_generation`: an unmerged LoRA adds two small matmuls and dtype casts to every linear layer
  at every decoded token. Generation instead runs on a plain copy of the base whose weights are
  refreshed from W + scale * B @ A before each generation (the base itself never changes, so no
  bf16 rounding drift accumulates as it would with merge/unmerge in place).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from trl import GRPOTrainer
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

_MULTIMODAL = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
               "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


class FastGRPOTrainer(GRPOTrainer):
    """GRPOTrainer plus the levers above; with both switched off it is TRL's trainer unchanged."""

    def __init__(self, *args, logits_head: bool = False, merged_generation: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.logits_head = logits_head
        self.merged_generation = merged_generation
        self._gen_model = None

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                           batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                           **kwargs):
        if not self.logits_head or compute_aux_loss or any(kwargs.get(k) is not None for k in _MULTIMODAL):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **kwargs)
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[start : start + batch_size], attention_mask[start : start + batch_size]
            with self.accelerator.autocast():
                # logits for the positions that predict the completion tokens, and nothing else
                logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=logits_to_keep + 1).logits
            logits = logits[:, :-1, :].float() / self.temperature
            all_logps.append(selective_log_softmax(logits, ids[:, -logits_to_keep:]))
            if compute_entropy:
                with torch.no_grad():
                    all_entropies.append(entropy_from_logits(logits))
        entropies = torch.cat(all_entropies) if compute_entropy else None
        return torch.cat(all_logps), entropies, None

    def _generate_single_turn(self, *args, **kwargs):
        if not self.merged_generation:
            return super()._generate_single_turn(*args, **kwargs)
        with self._merged_model_for_generation():
            return super()._generate_single_turn(*args, **kwargs)

    @contextmanager
    def _merged_model_for_generation(self):
        """Swap in a plain model holding W + scale * B @ A for the length of one generation."""
        peft_model = self.accelerator.unwrap_model(self.model_wrapped)
        if self._gen_model is None:
            self._gen_model = copy.deepcopy(peft_model.get_base_model())
            # TRL's fused-head patch is an instance `forward` closing over the *original* model: drop it
            self._gen_model.__dict__.pop("forward", None)
            _strip_lora(self._gen_model)
            self._gen_model.eval()
        _sync_merged(peft_model, self._gen_model)
        wrapped = self.model_wrapped
        self.model_wrapped = self._gen_model
        try:
            yield
        finally:
            self.model_wrapped = wrapped


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def _strip_lora(model) -> None:
    """Replace each LoRA wrapper in the copy by its base layer: a plain transformers model remains."""
    for name in list(_lora_layers(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).get_base_layer())
    for p in model.parameters():
        p.requires_grad_(False)


@torch.no_grad()
def _sync_merged(peft_model, gen_model) -> None:
    """gen weight = base weight + delta of the active adapter, computed fresh (no drift)."""
    for name, layer in _lora_layers(peft_model.get_base_model()).items():
        target = gen_model.get_submodule(name)
        base = layer.get_base_layer().weight
        delta = sum(layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.lora_A)
        target.weight.copy_((base.float() + delta.float()).to(target.weight.dtype))
