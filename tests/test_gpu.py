"""The CUDA path: host choices, a short real run, the fast levers forced on, vLLM colocate. Skipped without CUDA."""

import importlib.util

import pytest
import torch

from grpo_app.config import set_value
from grpo_app.models import host_settings
from grpo_app.training import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _gpu_cfg(cfg, tmp_path, **values):
    set_value(cfg, "model.device", "auto")
    set_value(cfg, "grpo.max_steps", 2)
    set_value(cfg, "run.dir", str(tmp_path / "run"))
    for key, value in values.items():
        set_value(cfg, key.replace("__", "."), value)
    return cfg


def test_host_picks_the_cuda_stack(tiny_cfg):
    host = host_settings(tiny_cfg)
    assert host.device == "cuda"
    assert host.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float32")
    flash = importlib.util.find_spec("flash_attn") is not None
    assert host.attn_implementation == ("flash_attention_2" if flash else "sdpa")
    bnb = importlib.util.find_spec("bitsandbytes") is not None
    assert host.optim == ("adamw_8bit" if bnb else "adamw_torch")


@pytest.mark.parametrize("levers", ["auto", "on"])
def test_short_run_on_cuda(tiny_cfg, tmp_path, levers):
    speed = {
        f"speed__{k}": levers
        for k in ("logits_head", "merged_generation", "shared_prefix", "fast_decode", "grouped_attention")
    }
    result = train(_gpu_cfg(tiny_cfg, tmp_path, **speed))
    assert result.status == "finished", result.error
    rows = [m for m in result.metrics if "loss" in m]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert (result.run_dir / "adapter" / "adapter_config.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_vllm_colocate_generation(tiny_cfg, tmp_path):
    cfg = _gpu_cfg(
        tiny_cfg, tmp_path, grpo__use_vllm=True, grpo__vllm_mode="colocate", grpo__vllm_gpu_memory_utilization=0.3
    )
    result = train(cfg)
    assert result.status == "finished", result.error


def test_cuda_out_of_memory_is_reported_and_the_memory_given_back(tiny_cfg, tmp_path):
    """A real CUDA OOM inside the training thread (a reward asks for 4 TB), then the next run works."""
    from grpo_app.registry import JobRegistry

    reward = tmp_path / "greedy.py"
    reward.write_text(
        "import torch\n\ndef greedy(prompts, completions, **kw):\n"
        "    torch.empty(2**42, dtype=torch.uint8, device='cuda')\n    return [0.0] * len(completions)\n"
    )
    cfg = _gpu_cfg(tiny_cfg, tmp_path, reward__functions=f"{reward}:greedy")
    registry = JobRegistry()
    snap = registry.start(cfg).wait(300)
    assert snap.status == "failed" and snap.message.startswith("Out of memory"), snap.message
    assert torch.cuda.memory_allocated() < 2**30  # the failed run's model and optimizer were released
    cfg.reward.functions, cfg.run.dir = ["length"], str(tmp_path / "next")
    assert registry.start(cfg).wait(300).status == "finished"
