"""The baseline of `bench/bench_process.py`: what a user writes with plain transformers to answer a file of chat
prompts, run as its own process. `generate` in batches of 8 (left-padded), the recipe's sampling.

    python bench/plain_generate.py MODEL_DIR PROMPTS.jsonl OUT.jsonl [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("prompts")
    parser.add_argument("out")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)  # the same answers on every run (the app seeds each row)
    tokenizer = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16).eval()
    prompts = [json.loads(line)["prompt"] for line in open(args.prompts, encoding="utf-8") if line.strip()]
    rows = []
    for i in range(0, len(prompts), args.batch_size):
        chunk = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts[i : i + args.batch_size]
        ]
        inputs = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=args.max_new_tokens,
                do_sample=True,
                temperature=0.5,
                min_p=0.1,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        for row in out[:, inputs["input_ids"].shape[1] :].tolist():
            ends = [j for j, t in enumerate(row) if t == tokenizer.eos_token_id]
            row = row[: ends[0] + 1] if ends else row
            rows.append({"completion": tokenizer.decode(row, skip_special_tokens=True), "tokens": len(row)})
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


if __name__ == "__main__":
    main()
