"""Inference, one job per module and no cycle:

- `kernels`: grouped attention and oneDNN-packed Linear weights (the fast path's building blocks);
- `decoder`: the sampler (`Decoder`: prompts prefilled once, a preallocated KV cache, exact cheap sampling) and
  the generation settings it honours;
- `engine`: `InferenceModels` and the batch/stream helpers that serve the Compare tab, the batch comparison,
  `generate` and `eval` (falls back to transformers' `generate` where the decoder cannot serve);
- `logprobs`: the training side, per-token log-probs with the LM head only on completion tokens.
"""
