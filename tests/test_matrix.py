"""The compatibility matrix (#22.1): a tiny random model of each family people bring, built from its transformers
config with SmolLM2's tokenizer, trains with every speed lever on and with all off; the fast path computes what
TRL and transformers compute (log-probs, entropies, LoRA gradients, greedy tokens); where a lever cannot serve a
family (sliding windows), it steps aside and the log says so."""

import threading

import pytest
import torch
import transformers
from transformers import AutoTokenizer, GenerationConfig

from grpo_app.inference import decoder as decoding
from grpo_app.inference.kernels import plain_attention
from grpo_app.runs import Run
from grpo_app.training import Reporter, train

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
FAMILIES = {  # family -> (config class, causal LM class, extra config)
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 16}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 16}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {}),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory, tokenizer_dir):
    config_class, model_class, extra = FAMILIES[request.param]
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = getattr(transformers, config_class)(
        vocab_size=len(tok), max_position_embeddings=1024, **SMALL, **ids, **extra
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    getattr(transformers, model_class)(config).save_pretrained(path)
    tok.save_pretrained(path)
    return request.param, path


class Lines(Reporter):
    def __init__(self):
        self.lines = []

    def on_log(self, line):
        self.lines.append(line)


def _levers(cfg, value):
    for lever in ("logits_head", "merged_generation", "shared_prefix", "fast_decode", "grouped_attention"):
        setattr(cfg.speed, lever, value)


@pytest.mark.parametrize("levers", ["on", "off"])
def test_each_family_trains_and_resumes(family, levers, tiny_cfg):
    name, path = family
    tiny_cfg.model.name = str(path)
    _levers(tiny_cfg, levers)
    tiny_cfg.grpo.save_steps, tiny_cfg.grpo.max_steps = 1, 2
    stop = threading.Event()

    class StopAtOne(Lines):
        def on_progress(self, step, total):
            if step >= 1:
                stop.set()

    first = train(tiny_cfg, StopAtOne(), stop)
    assert first.status == "stopped", first.error
    resumed = train(tiny_cfg, Lines(), resume=True)
    assert resumed.status == "finished", resumed.error
    assert [m["step"] for m in Run(resumed.run_dir).metrics()] == [1, 2]


def test_the_fast_path_computes_what_trl_computes(family, tiny_cfg, tmp_path):
    from test_fast_path import _trainer

    name, path = family
    # float32: a random model's top logits are near-ties, which bf16 rounding (merged W + BA vs W and BA apart)
    # would flip; the maths compared is the same in either dtype
    tiny_cfg.model.name, tiny_cfg.model.dtype, tiny_cfg.grpo.bf16 = str(path), "float32", False
    trainer = _trainer(tiny_cfg, tmp_path, merged_generation=True, fast_decode=True)
    ids = torch.randint(0, 1000, (3, 14))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    results = []
    for head in (False, True):
        trainer.logits_head = head
        trainer.model.zero_grad()
        logps, ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 6, compute_entropy=True)
        logps.sum().backward()
        grads = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if "lora_A" in n])
        results.append((logps.detach(), ent.detach(), grads))
    (ref_lp, ref_ent, ref_g), (lp, en, g) = results
    torch.testing.assert_close(lp, ref_lp, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(en, ref_ent, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(g, ref_g, atol=5e-3, rtol=5e-2)
    prompts = [[5, 6, 7, 8, 9]] * 2 + [[11, 12, 13]] * 2
    left, pad_mask = decoding.left_pad(prompts, 0, "cpu")
    config = GenerationConfig(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=2)
    peft_model = trainer.model.eval()
    with torch.no_grad():
        ref = peft_model.generate(input_ids=left, attention_mask=pad_mask, generation_config=config)
    ref = [decoding._until_eos(r, torch.tensor([2])) for r in ref[:, left.size(1) :].tolist()]
    with trainer._merged_model_for_generation():
        gen = trainer._gen_model
        merged = gen.generate(input_ids=left, attention_mask=pad_mask, generation_config=config)
        assert [decoding._until_eos(r, torch.tensor([2])) for r in merged[:, left.size(1) :].tolist()] == ref
        if plain_attention(gen.config):
            assert decoding.sample(gen, prompts, config) == ref  # the decoder's greedy tokens are generate's
        else:
            assert decoding.supports(gen, config)  # a sliding window: the decoder steps aside, and says why


def test_levers_that_cannot_serve_a_family_step_aside_in_the_log(family, tiny_cfg):
    name, path = family
    tiny_cfg.model.name, tiny_cfg.grpo.max_steps = str(path), 1
    log = Lines()
    assert train(tiny_cfg, log).status == "finished"
    from transformers import AutoConfig

    if not plain_attention(AutoConfig.from_pretrained(path)):
        assert any("steps aside" in line for line in log.lines), log.lines
