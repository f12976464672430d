"""The CPU fast path must compute what TRL computes: same log-probs, same generations."""

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
    trainer = FastGRPOTrainer(model=model, reward_funcs=[lambda prompts, completions, **k: [0.0] * len(prompts)],
                              args=args, train_dataset=data, processing_class=tok, peft_config=lora, **levers)
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
    ref_logps, ref_ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 7,
                                                                       compute_entropy=True)
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
    with torch.no_grad():
        ref = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        with trainer._merged_model_for_generation():
            gen = trainer.model_wrapped
            assert gen is not peft_model and not any("lora" in n for n, _ in gen.named_parameters())
            out = gen.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    assert trainer.model_wrapped is not gen  # swapped back
    assert torch.equal(out, ref)
