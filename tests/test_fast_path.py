"""The CPU fast path must compute what TRL computes: same log-probs, same generations."""

import pytest
import torch

from grpo_app.data import build_prompts
from grpo_app.fast import FastGRPOTrainer
from grpo_app.models import load_model
from grpo_app.training import grpo_args, host_settings


def _trainer(cfg, tmp_path, **levers):
    from peft import LoraConfig

    host = host_settings(cfg)
    model, tok, _ = load_model(cfg, host)
    data, _ = build_prompts(cfg.data, tok, cfg.grpo.max_prompt_length)
    args = grpo_args(cfg, host, tmp_path / "t")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = FastGRPOTrainer(
        model=model,
        reward_funcs=[lambda prompts, completions, **k: [0.0] * len(prompts)],
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=lora,
        **levers,
    )
    torch.manual_seed(1)
    for name, p in trainer.model.named_parameters():  # make the adapter non-trivial
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    return trainer


def test_logits_head_matches_trl_kernel(tiny_cfg, tmp_path):
    trainer = _trainer(tiny_cfg, tmp_path)
    ids = torch.randint(0, 1000, (4, 20))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    trainer.logits_head = False
    ref_logps, ref_ent, _ = trainer._get_per_token_logps_and_entropies(
        trainer.model, ids, mask, 7, compute_entropy=True
    )
    trainer.logits_head = True
    logps, ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 7, compute_entropy=True)
    assert logps.shape == ref_logps.shape == (4, 7)
    torch.testing.assert_close(logps, ref_logps, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(ent, ref_ent, atol=2e-2, rtol=1e-2)


def test_logits_head_gradients_match(tiny_cfg, tmp_path):
    trainer = _trainer(tiny_cfg, tmp_path)
    ids = torch.randint(0, 1000, (2, 16))
    grads = []
    for head in (False, True):
        trainer.logits_head = head
        trainer.model.zero_grad()
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 5)
        logps.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_A" in n]))
    torch.testing.assert_close(grads[1], grads[0], atol=5e-3, rtol=5e-2)


def test_merged_generation_equals_peft_generation(tiny_cfg, tmp_path):
    trainer = _trainer(tiny_cfg, tmp_path, merged_generation=True)
    peft_model = trainer.model
    peft_model.eval()
    ids = torch.randint(0, 1000, (3, 10))
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    base = {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" not in n}
    with torch.no_grad():
        ref = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        with trainer._merged_model_for_generation():
            gen = trainer.model_wrapped
            assert gen is not peft_model and not any("lora" in n for n, _ in gen.named_parameters())
            out = gen.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    assert trainer.model_wrapped is not gen  # swapped back
    assert torch.equal(out, ref)
    # the copy shares the policy's untouched tensors (no second embedding) and never writes into them
    policy = {p.data_ptr() for p in peft_model.parameters()}
    assert gen.get_input_embeddings().weight.data_ptr() in policy
    assert all(torch.equal(p, base[n]) for n, p in peft_model.named_parameters() if "lora_" not in n)
    with torch.no_grad():  # a changed adapter reaches the copy: merged afresh at each generation
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(-1)
        ref = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        with trainer._merged_model_for_generation():
            assert torch.equal(gen.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs), ref)


def _grpo_batch(prompt_lens=(9, 6), group=3, completion=30):
    """Left-padded prompts, each repeated `group` times, followed by right-padded completions."""
    torch.manual_seed(3)
    width = max(prompt_lens) + 2  # padding shared by every prompt, as TRL pads to a whole generation batch
    rows, masks = [], []
    for length in prompt_lens:
        prompt = torch.randint(3, 1000, (length,))
        for g in range(group):
            done = (completion, 2, completion // 2)[g % 3]  # lengths far apart: several length groups
            pad = torch.zeros(width - length, dtype=torch.long)
            ids = torch.cat([pad, prompt, torch.randint(3, 1000, (completion,))])
            mask = torch.cat([torch.zeros(width - length), torch.ones(length + done), torch.zeros(completion - done)])
            rows.append(ids), masks.append(mask.long())
    return torch.stack(rows), torch.stack(masks)


def test_shared_prefix_matches_trl(tiny_cfg, tmp_path):
    trainer = _trainer(tiny_cfg, tmp_path, logits_head=True, shared_prefix=True)
    ids, mask = _grpo_batch()
    results = []
    for fast in (False, True):  # TRL's own path, then ours: padding skipped, each prompt forwarded once
        trainer.logits_head = trainer.shared_prefix = fast
        trainer.model.zero_grad()
        logps, ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 30, compute_entropy=True)
        (logps * mask[:, -30:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_" in n])
        results.append((logps.detach(), ent, grads))
    (ref_logps, ref_ent, ref_grads), (logps, ent, grads) = results
    valid = mask[:, -30:].bool()
    torch.testing.assert_close(logps[valid], ref_logps[valid], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(ent[valid], ref_ent[valid], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(grads, ref_grads, atol=1e-2, rtol=5e-2)


def test_length_groups_pad_each_group_to_its_own_longest():
    from grpo_app.inference.logprobs import length_groups

    groups = length_groups([30, 2, 15, 30, 2, 15])
    assert sorted(i for g in groups for i in g) == list(range(6)) and len(groups) == 3
    assert all(len({[30, 2, 15, 30, 2, 15][i] for i in g}) == 1 for g in groups)
    assert length_groups([5] * 8) == [list(range(8))]  # equal lengths: one forward


def test_grouped_attention_matches_sdpa(tiny_cfg, tmp_path):
    from grpo_app.inference import kernels

    trainer = _trainer(tiny_cfg, tmp_path, logits_head=True, shared_prefix=True)
    ids, mask = _grpo_batch()
    inner = trainer.model.get_base_model()
    results = []
    for impl in ("sdpa", kernels.ATTENTION):
        inner.set_attn_implementation(impl)
        trainer.model.zero_grad()
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 30)
        (logps * mask[:, -30:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_" in n])
        results.append((logps.detach(), grads))
    assert all(torch.isfinite(t).all() for pair in results for t in pair)  # left padding: queries seeing no key
    torch.testing.assert_close(results[1][0], results[0][0], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-2, rtol=5e-2)


def test_fast_decode_greedy_equals_generate(tiny_cfg, tmp_path):
    from transformers import GenerationConfig

    from grpo_app.inference import decoder as decoding
    from grpo_app.inference import kernels

    trainer = _trainer(tiny_cfg, tmp_path, merged_generation=True, fast_decode=True)
    assert trainer.fast_decode
    prompts = [[5, 6, 7, 8, 9, 10]] * 3 + [[11, 12, 13]] * 3 + [[14, 15, 16, 17]] * 2
    ids, mask = decoding.left_pad(prompts, 0, "cpu")
    peft_model = trainer.model.eval()  # the reference: transformers' generate on the PEFT model itself
    config = GenerationConfig(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=2)
    with torch.no_grad():
        first = peft_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, ids.size(1) :]
        # stop on tokens some rows emit early, so rows leave the batch at different steps
        config.eos_token_id = [int(first[0, 2]), int(first[3, 5])]
        ref = peft_model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        ref = ref[:, ids.size(1) :].tolist()
    with trainer._merged_model_for_generation():
        gen = trainer._gen_model
        assert any(isinstance(m, kernels.PackedLinear) for m in gen.modules()) == (gen.dtype == torch.bfloat16)
        out = decoding.sample(gen, prompts, config)
        assert "no_repeat_ngram_size" in decoding.supports(gen, GenerationConfig(no_repeat_ngram_size=3))
        gen.generation_config.no_repeat_ngram_size = 3  # the model's own settings count too, as in `generate`
        assert "no_repeat_ngram_size" in decoding.supports(gen, config)
        gen.generation_config.no_repeat_ngram_size = 0
    stops = torch.tensor(config.eos_token_id)
    assert out == [decoding._until_eos(r, stops) for r in ref]
    assert min(map(len, out)) < 12


def test_rows_sharing_a_prompt_read_its_keys_once_with_the_same_result(tiny_cfg, tmp_path):
    """GRPO's rows share their prompt's K/V (`SharedPrefix`); each step's logits are those of rows holding copies,
    while rows finish and leave at different steps, prompts of different lengths left-padded. In float32, where a
    row attending to another row's tokens moves the logits by ~5e-3 and bf16 rounding would too."""
    from transformers import GenerationConfig

    from grpo_app.inference import decoder as decoding

    tiny_cfg.model.dtype = "float32"
    trainer = _trainer(tiny_cfg, tmp_path, merged_generation=True, fast_decode=True)
    torch.manual_seed(4)
    prompts = [torch.randint(3, 1000, (n,)).tolist() for n in (37, 12, 25)]
    rows = [prompts[0]] * 4 + [prompts[1]] * 3 + [prompts[2]] * 5
    config = GenerationConfig(max_new_tokens=14, do_sample=True, top_k=0, pad_token_id=0, eos_token_id=2)

    def seeds():  # one stream per row, the same for both decoders: rows of one prompt draw different tokens
        return [decoding.seeded(i, "cpu") for i in range(len(rows))]

    with trainer._merged_model_for_generation():
        gen = trainer._gen_model
        first = decoding.Decoder(gen, rows, config, generators=seeds())
        while first.step():
            pass
        first = first.completions()
        config.eos_token_id = [first[0][3], first[5][6], first[9][2]]  # rows stop at different steps
        shared = decoding.Decoder(gen, rows, config, generators=seeds())
        copied = decoding.Decoder(gen, rows, config, generators=seeds(), share=False)
        assert shared.shared is not None and copied.shared is None
        steps = 0
        while True:
            torch.testing.assert_close(shared.logits, copied.logits, atol=1e-5, rtol=1e-4)
            going = shared.step()
            assert copied.step() == going
            steps += 1
            if not going:
                break
        assert len(shared.rows) < len(rows)  # rows left the batch on the way
    assert shared.completions() == copied.completions()
    assert steps > 3 and min(map(len, shared.completions())) < 14


def test_fast_decode_samples_from_the_processed_distribution():
    from transformers import GenerationConfig

    from grpo_app.inference import decoder as decoding

    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, -9.0]]).repeat(20000, 1)
    counts = torch.bincount(decoding.draw(scores, torch.Generator().manual_seed(0)), minlength=5).float()
    torch.testing.assert_close(counts / counts.sum(), scores[0].softmax(-1), atol=1e-2, rtol=0)
    config = GenerationConfig(do_sample=True, temperature=0.5, top_k=3, min_p=0.1)
    processed = decoding.processors(config)(torch.zeros(20000, 1, dtype=torch.long), scores.clone())
    drawn = decoding.draw(processed, torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) <= {0, 1}  # top-k drops 3 and 4; min-p then drops 2 at temperature 0.5


def test_token_logprobs_match_autograd_reference():
    from grpo_app.inference.logprobs import token_logprobs

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        logits = (torch.randn(37, 50) * 4).to(dtype).requires_grad_()
        tokens, weights = torch.randint(0, 50, (37,)), torch.randn(37)
        before = logits.detach().clone()
        logps, entropy = token_logprobs(logits, tokens, temperature=0.7, chunk=8)
        (logps * weights).sum().backward()
        assert torch.equal(logits.detach(), before)  # never modified in place
        ref = logits.detach().float().div(0.7).requires_grad_()
        log_softmax = ref.log_softmax(-1)
        (log_softmax.gather(-1, tokens[:, None]).squeeze(-1) * weights).sum().backward()
        torch.testing.assert_close(logps, log_softmax.gather(-1, tokens[:, None]).squeeze(-1).detach())
        torch.testing.assert_close(entropy, -(log_softmax.exp() * log_softmax).sum(-1).detach())
        torch.testing.assert_close(
            logits.grad.float(), ref.grad / 0.7, atol=1e-2 if dtype == torch.bfloat16 else 1e-5, rtol=1e-2
        )


def test_kl_run_with_every_lever_on(tiny_cfg):
    """beta > 0 sends the reference pass (adapter disabled) through the same lean, shared-prefix path."""
    from grpo_app.training import train

    for lever in ("logits_head", "merged_generation", "shared_prefix", "fast_decode", "grouped_attention"):
        setattr(tiny_cfg.speed, lever, "on")
    tiny_cfg.grpo.beta = 0.04
    result = train(tiny_cfg)
    assert result.status == "finished", result.error
    rows = [m for m in result.metrics if "kl" in m]
    assert len(rows) == 2 and all(r["kl"] == r["kl"] and r["kl"] >= 0 for r in rows)  # finite, not NaN


def test_group_by_prompt_moves_whole_rows():
    from grpo_app.fast import group_by_prompt

    a, b = [1, 2, 3], [4, 5, 6]
    batches = [
        {
            "prompt_ids": torch.tensor([a, b, a, b]),
            "advantages": torch.tensor([0.0, 1.0, 2.0, 3.0]),
            "tags": ["a0", "b1", "a2", "b3"],
            "num_items_in_batch": torch.tensor(40),
            "old": None,
        },
        {
            "prompt_ids": torch.tensor([b, a, b, a]),
            "advantages": torch.tensor([4.0, 5.0, 6.0, 7.0]),
            "tags": ["b4", "a5", "b6", "a7"],
            "num_items_in_batch": torch.tensor(40),
            "old": None,
        },
    ]
    first, second = group_by_prompt(batches)
    assert first["prompt_ids"].tolist() == [a] * 4 and second["prompt_ids"].tolist() == [b] * 4
    assert first["advantages"].tolist() == [0.0, 2.0, 5.0, 7.0] and first["tags"] == ["a0", "a2", "a5", "a7"]
    assert second["tags"] == ["b1", "b3", "b4", "b6"] and second["advantages"].tolist() == [1.0, 3.0, 4.0, 6.0]
    assert first["num_items_in_batch"].item() == 40 and first["old"] is None


def test_grouped_micro_batches_give_the_same_update(tiny_cfg, tmp_path):
    """Two prompts x 4 completions in 2 micro-batches: regrouped and shared, or as TRL shuffled them."""
    from grpo_app.training import train

    results = []
    for share in ("on", "off"):
        tiny_cfg.grpo.per_device_train_batch_size, tiny_cfg.grpo.gradient_accumulation_steps = 4, 2
        tiny_cfg.grpo.max_steps = 1
        tiny_cfg.speed.shared_prefix = share
        tiny_cfg.run.dir = str(tmp_path / share)
        result = train(tiny_cfg)
        assert result.status == "finished", result.error
        results.append(next(m for m in result.metrics if "loss" in m))
    shared, plain = results
    assert shared["completions/mean_length"] == plain["completions/mean_length"]  # the same samples
    assert abs(shared["loss"] - plain["loss"]) < 1e-2 + 0.05 * abs(plain["loss"])
    assert abs(shared["grad_norm"] - plain["grad_norm"]) < 0.05 * plain["grad_norm"]


def test_an_entropy_bonus_keeps_trls_log_probs(tiny_cfg, tmp_path):
    tiny_cfg.grpo.extra = {"entropy_coef": 0.01}  # needs an entropy gradient, which logprobs.py does not give
    trainer = _trainer(tiny_cfg, tmp_path, logits_head=True, shared_prefix=True)
    assert not trainer._lean_logprobs() and not trainer._may_group_by_prompt()


def test_long_prompts_backpropagate_through_flash_attention(tiny_cfg, tmp_path, monkeypatch):
    """Above kernels.LONG_ATTENTION, a forward with gradients goes to sdpa, which keeps no [queries x keys]
    scores for backward (grouped attention kept ~0.9 GB of them for one 768-token SmolLM2 prompt)."""
    from grpo_app.inference import kernels

    trainer = _trainer(tiny_cfg, tmp_path, logits_head=True, shared_prefix=True)
    trainer.model.get_base_model().set_attn_implementation(kernels.ATTENTION)
    ids, mask = _grpo_batch(prompt_lens=(40, 36), completion=12)
    results = []
    for limit in (10**9, 16 * 16):  # grouped everywhere, then sdpa for the prompts
        monkeypatch.setattr(kernels, "LONG_ATTENTION", limit)
        squares = []

        def keep(t, squares=squares):
            square = t.is_floating_point() and t.dim() >= 3 and t.size(-1) == t.size(-2) >= 36
            if square and t.numel() > t.size(0) * t.size(-1) ** 2:  # queries x keys per head, not the mask
                squares.append(t.shape)
            return t

        trainer.model.zero_grad()
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
        (logps * mask[:, -12:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_" in n])
        results.append((logps.detach(), grads, squares))
    assert results[0][2] and not results[1][2]  # the prompt's attention scores were kept, then not
    torch.testing.assert_close(results[1][0], results[0][0], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-2, rtol=5e-2)


@pytest.mark.parametrize("autocast", [False, True])
def test_lora_layers_keep_their_bf16_input_with_the_same_result(tiny_cfg, autocast):
    """PEFT keeps an fp32 copy of each LoRA layer's input for backward (q, k, v: three of one tensor); the fast
    path keeps the shared bf16 input instead, with bit-identical log-probs and gradients."""
    from peft import LoraConfig, get_peft_model

    from grpo_app.inference import kernels
    from grpo_app.inference.logprobs import completion_logprobs, lean_parts

    model, _, _ = load_model(tiny_cfg, host_settings(tiny_cfg))
    model = get_peft_model(model.to(torch.bfloat16), LoraConfig(r=4, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    ids, mask = _grpo_batch()
    hidden, inter = model.config.hidden_size, model.config.intermediate_size

    def step():
        kept = []
        model.zero_grad()
        with (
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast),
            torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t),
        ):
            logps, _ = completion_logprobs(lean_parts(model), ids, mask, 30, 1.0, True)
        (logps * mask[:, -30:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in model.named_parameters() if "lora_" in n])
        params = {p.data_ptr() for p in model.parameters()}
        inputs = {  # activations of width hidden or intermediate kept for backward, each storage once
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for t in kept
            if t.size(-1) in (hidden, inter) and t.data_ptr() not in params
        }
        return logps.detach(), grads, sum(inputs.values())

    before = step()
    assert kernels.lora_inputs_kept_bf16(model) == 7 * model.config.num_hidden_layers
    after = step()
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert after[2] < (before[2] if autocast else 0.7 * before[2])  # no per-adapter copies of the input


def test_long_prompts_run_again_in_backward_with_the_same_gradients(tiny_cfg, tmp_path, monkeypatch):
    """Above logprobs.CHECKPOINT_PROMPT_TOKENS, the shared prompt forward keeps only its keys and values for
    backward and runs again there: the same log-probs and LoRA gradients, fewer tensors kept."""
    from grpo_app.inference import logprobs

    trainer = _trainer(tiny_cfg, tmp_path, logits_head=True, shared_prefix=True)
    ids, mask = _grpo_batch(prompt_lens=(40, 36), completion=12)
    results = []
    for limit in (10**9, 16):  # kept, then run again
        monkeypatch.setattr(logprobs, "CHECKPOINT_PROMPT_TOKENS", limit)
        kept = []
        trainer.model.zero_grad()
        with torch.autograd.graph.saved_tensors_hooks(lambda t, kept=kept: kept.append(t.numel()) or t, lambda t: t):
            logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
        (logps * mask[:, -12:]).sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_" in n])
        results.append((logps.detach(), grads, sum(kept)))
    assert results[1][2] < results[0][2]
    torch.testing.assert_close(results[1][0], results[0][0], atol=0, rtol=0)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-6, rtol=1e-5)
