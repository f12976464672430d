"""A merged model as one GGUF file for llama.cpp, Ollama and LM Studio, written with the `gguf` package.

Names, metadata and the tokenizer follow llama.cpp's own converter for these families (tensor names
`blk.N.attn_q.weight`...; Llama's q/k rows permuted to the interleaved rotary layout llama.cpp expects; a
byte-level BPE tokenizer with its merges and chat template). Norms and biases stay float32; matrices are f16 or
q8_0. Families llama.cpp would need more for (sliding windows, soft-capping, other tokenizers) are refused in one
sentence before any work.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ExportError

ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}
KINDS = ("f16", "q8_0")


def architecture(config) -> str:
    """The llama.cpp architecture for a transformers config, or ExportError naming what is supported."""
    archs = getattr(config, "architectures", None) or []
    arch = next((ARCHS[a] for a in archs if a in ARCHS), None)
    if arch is None:
        raise ExportError(
            f"GGUF export supports {', '.join(sorted(ARCHS))}; this model is {', '.join(archs) or config.model_type}."
        )
    return arch


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotate-half rows -> llama.cpp's interleaved pairs (what convert_hf_to_gguf does for Llama)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _name(hf: str) -> str | None:
    parts = hf.split(".")
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    if len(parts) >= 5 and parts[:2] == ["model", "layers"]:
        block, rest = parts[2], ".".join(parts[3:])
        table = {
            "input_layernorm.weight": "attn_norm.weight",
            "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.o_proj.weight": "attn_output.weight",
            "self_attn.q_proj.bias": "attn_q.bias",
            "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias",
            "self_attn.q_norm.weight": "attn_q_norm.weight",
            "self_attn.k_norm.weight": "attn_k_norm.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight",
            "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        }
        return f"blk.{block}.{table[rest]}" if rest in table else None
    return None


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ExportError(f"No safetensors weights in '{folder}' to write as GGUF.")
    out = {}
    for f in files:
        out |= {k: v.float().numpy() for k, v in load_file(f).items()}
    return out


def _tokenizer(writer, tok, vocab_size: int, arch: str) -> None:
    import gguf

    state = json.loads(tok.backend_tokenizer.to_str())
    if state.get("model", {}).get("type") != "BPE":
        raise ExportError("GGUF export writes byte-level BPE tokenizers (GPT-2 style); this one is not.")
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"].get("merges", [])]
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    tokens, types = [], []
    for i in range(vocab_size):
        token = tok.convert_ids_to_tokens(i) if i < len(tok) else f"[PAD{i}]"
        tokens.append(token)
        if i >= len(tok):
            types.append(gguf.TokenType.UNUSED)
        else:
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if arch.startswith("qwen") else "smollm" if vocab_size == 49152 else "default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, value in (
        ("bos", tok.bos_token_id),
        ("eos", tok.eos_token_id),
        ("pad", tok.pad_token_id),
        ("unk", tok.unk_token_id),
    ):
        if value is not None:
            getattr(writer, f"add_{key}_token_id")(int(value))
    writer.add_add_bos_token(False)
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)


def write_gguf(model_dir: str | Path, out: str | Path, kind: str = "f16", name: str = "") -> Path:
    """Write the (merged) model folder as `out`, a GGUF file of `kind` (f16 | q8_0)."""
    import gguf
    from transformers import AutoConfig, AutoTokenizer

    if kind not in KINDS:
        raise ExportError(f"GGUF type must be one of {', '.join(KINDS)}, not '{kind}'.")
    model_dir, out = Path(model_dir), Path(out)
    config = AutoConfig.from_pretrained(model_dir)
    arch = architecture(config)
    tok = AutoTokenizer.from_pretrained(model_dir)
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[kind]
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[kind]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_name(name or model_dir.name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_rope_dimension_count(head_dim)
    if arch == "qwen3":
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    _tokenizer(writer, tok, config.vocab_size, arch)
    for hf, tensor in _weights(model_dir).items():
        target = _name(hf)
        if target is None:
            if hf == "lm_head.weight":
                continue
            raise ExportError(f"GGUF export does not know the tensor '{hf}' of this {arch} model.")
        if arch == "llama" and target.endswith("attn_q.weight"):
            tensor = _permute(tensor, heads)
        elif arch == "llama" and target.endswith("attn_k.weight"):
            tensor = _permute(tensor, kv_heads)
        if tensor.ndim == 1:
            writer.add_tensor(target, tensor.astype(np.float32))
        elif kind == "f16":
            writer.add_tensor(target, tensor.astype(np.float16))
        else:
            writer.add_tensor(target, gguf.quants.quantize(tensor.astype(np.float32), qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(out)
    return out
