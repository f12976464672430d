"""Several processes train one run: `accelerate launch` and `torchrun`, 2 CPU processes on gloo.

(`accelerate launch --cpu` starts one process unless MPI is set up; `--multi_gpu --num_processes 2` on a machine
without CUDA starts two processes that agree on gloo, the DDP setup GPUs get with NCCL.)"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_app.config import Config
from grpo_app.runs import Run, read_status

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHERS = {
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port"],
    "torchrun": ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"],
}


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_processes_write_one_coherent_run_folder(tiny_cfg, tmp_path, launcher):
    run_dir = tmp_path / "ddp"
    cmd = [
        sys.executable,
        *LAUNCHERS[launcher],
        str(_free_port()),
        "-m",
        "grpo_app",
        "train",
        "--set",
        f"model.name={tiny_cfg.model.name}",
        f"data.path={tiny_cfg.data.path}",
        "grpo.per_device_train_batch_size=4",
        "grpo.gradient_accumulation_steps=1",
        "grpo.num_generations=4",
        "grpo.max_completion_length=8",
        "grpo.max_steps=2",
        "grpo.save_steps=1",
        f"run.dir={run_dir}",
    ]
    r = subprocess.run(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("run folder:") == 1 and r.stderr.count("[finished]") == 1  # rank 0 speaks for the run
    assert "mean reward: first 2 steps" in r.stdout
    run = Run(run_dir)
    assert [m["step"] for m in run.metrics()] == [1, 2]  # one row per step, not one per process
    steps = [c["step"] for c in run.completions()]
    assert steps == [1] * 4 + [2] * 4  # rank 0's completions, each written once
    assert read_status(run_dir)["status"] == "finished" and read_status(run_dir)["processes"] == 2
    cfg = Config.load(run.config_file)
    assert cfg.run.dir == str(run_dir) and cfg.grpo.max_steps == 2
    assert run.has_adapter()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".")]  # no temp files left by either rank
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 16


def test_shipped_accelerate_configs_load_and_the_page_offers_them():
    from accelerate.commands.config.config_args import ClusterConfig

    from grpo_app.ui.forms import ENGINES, cluster_commands

    kinds = {name: ClusterConfig.from_yaml_file(str(REPO / "configs" / f"{name}.yaml")) for name in ENGINES}
    assert {k: v.distributed_type.value for k, v in kinds.items()} == {
        "ddp": "MULTI_GPU",
        "deepspeed_zero2": "DEEPSPEED",
        "deepspeed_zero3": "DEEPSPEED",
        "fsdp": "FSDP",
    }
    assert kinds["deepspeed_zero3"].deepspeed_config["zero_stage"] == 3
    text = cluster_commands()
    assert all(f"--config_file configs/{name}.yaml -m grpo_app train --config run.yaml" in text for name in ENGINES)
