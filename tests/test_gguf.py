"""GGUF export (#22.2): a merged model written with the `gguf` package, loaded back by transformers, compared."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo_app.errors import ExportError
from grpo_app.export import export_run
from grpo_app.gguf_export import write_gguf
from grpo_app.training import train

PROMPT = "The cat sat on the mat and looked at the"


def _round_trip(folder, gguf_name, steps=8):
    """(max |logit difference|, share of greedy tokens that agree) between the safetensors and the GGUF model."""
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_name)
    ids = AutoTokenizer.from_pretrained(folder)(PROMPT, return_tensors="pt").input_ids
    assert tok(PROMPT, return_tensors="pt").input_ids.tolist() == ids.tolist()  # the tokenizer came along
    with torch.no_grad():
        diff = (ref(ids).logits - back(ids).logits).abs().max().item()
        kw = dict(max_new_tokens=steps, do_sample=False, pad_token_id=tok.pad_token_id or 0)
        a, b = ref.generate(ids, **kw)[0, ids.shape[1] :], back.generate(ids, **kw)[0, ids.shape[1] :]
    return diff, (a == b).float().mean().item()


def test_a_trained_llama_run_exports_as_gguf(tiny_cfg, tmp_path):
    run_dir = train(tiny_cfg).run_dir
    folder = export_run(run_dir, gguf="f16", out=tmp_path / "f16")
    assert (folder / "model-f16.gguf").is_file() and "llama-cli -m model-f16.gguf" in (folder / "README.md").read_text()
    diff, agree = _round_trip(folder, "model-f16.gguf")
    assert diff < 1e-2 and agree == 1.0, (diff, agree)
    q8 = export_run(run_dir, gguf="q8_0", out=tmp_path / "q8")
    assert (q8 / "model-q8_0.gguf").stat().st_size < (folder / "model-f16.gguf").stat().st_size
    diff, agree = _round_trip(q8, "model-q8_0.gguf")
    assert diff < 0.05, diff


def test_qwen2_writes_and_reads_back(tmp_path, tokenizer_dir):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    write_gguf(tmp_path, tmp_path / "model-f16.gguf", "f16")
    diff, agree = _round_trip(tmp_path, "model-f16.gguf")
    assert diff < 1e-2 and agree == 1.0, (diff, agree)


def test_a_family_it_cannot_write_is_one_sentence_before_any_work(tmp_path, tokenizer_dir):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16,
    )  # fmt: skip
    Gemma2ForCausalLM(config).save_pretrained(tmp_path)
    expected = (
        "GGUF export supports LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM; this model is Gemma2ForCausalLM."
    )
    with pytest.raises(ExportError, match=expected):
        write_gguf(tmp_path, tmp_path / "x.gguf")
    assert not list(tmp_path.glob("*.gguf*"))


def test_the_export_panel_writes_gguf_of_the_best_adapter(tiny_cfg, tmp_path):
    from grpo_app.access import Policy
    from grpo_app.ui import create_ui

    root = tmp_path / "runs"
    tiny_cfg.run.dir, tiny_cfg.run.eval_steps, tiny_cfg.run.eval_size = str(root / "r"), 1, 2
    assert train(tiny_cfg).status == "finished"
    tab = create_ui(str(root), Policy(runs_root=root)).train
    text = tab.manage["export"](str(root / "r"), True, "", "best", "q8_0")
    assert text.startswith("Exported to") and "model-q8_0.gguf" in text
    assert (root / "r" / "merged" / "model-q8_0.gguf").is_file()
