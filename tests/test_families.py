"""Model families beyond Llama (#22, first part): a family transformers will not run with sdpa trains with eager."""

import pytest
from test_matrix import Lines
from transformers import AutoTokenizer

from grpo_app.runs import Run
from grpo_app.training import train


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory, tokenizer_dir):
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-gemma2")
    Gemma2ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_gemma2_trains_with_eager_attention(tiny_cfg, tiny_gemma2):
    """It failed with "is not a causal language model": transformers refuses sdpa for Gemma 2. The host's own
    choice steps aside to eager, says so, and the run records it."""
    tiny_cfg.model.name = str(tiny_gemma2)
    log = Lines()
    result = train(tiny_cfg, log)
    assert result.status == "finished", result.error
    assert any("sdpa attention is not supported; using eager" in line for line in log.lines), log.lines
    assert Run(result.run_dir).config().model.attn_implementation == "eager"


def test_an_attention_the_user_asked_for_is_refused_in_one_sentence(tiny_cfg, tiny_gemma2):
    tiny_cfg.model.name, tiny_cfg.model.attn_implementation = str(tiny_gemma2), "sdpa"
    result = train(tiny_cfg)
    assert result.status == "failed" and result.message == (
        f"'{tiny_gemma2}' cannot use attention 'sdpa' in transformers; set model.attn_implementation=eager (or auto)."
    )
