"""Rewards written in the page: saved as a file, checked before any run can use them.

`save_reward` writes the code to `<runs>/rewards/<name>.py` and checks it in a separate process with a time
limit (so an endless loop or a crash in the user's code never touches the app): it loads, has a function that
takes TRL's arguments, and returns one finite number (or None) per completion on a few real prompts with the
dataset's columns. What is wrong is one sentence; the reward is then `<file>:<function>` like any custom reward.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

from .config import ConfigError
from .prompts import prompt_text

REPO = Path(__file__).resolve().parent.parent

CHECK_SECONDS = 20
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
EXAMPLE = '''def my_reward(prompts, completions, **kwargs):
    """One float per completion. Dataset columns arrive by name in kwargs (e.g. kwargs["answer"])."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]  # chat format: messages
    return [float(len(t.split()) <= 20) for t in texts]
'''


def check_file(path: str, function: str, sample: dict) -> str:
    """'' if the reward works on `sample` (prompts, completions and columns), else what is wrong, in a sentence."""
    from .rewards import load_custom

    try:
        func = load_custom(f"{path}:{function}")
    except ConfigError as e:
        return str(e)
    params = inspect.signature(func).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "completions" not in params and not takes_all:
        return f"'{function}' must take TRL's arguments: def {function}(prompts, completions, **kwargs)."
    if not takes_all:
        return f"'{function}' must accept **kwargs: TRL also passes the dataset's columns and completion_ids."
    n = len(sample["completions"])
    try:
        scores = func(prompts=sample["prompts"], completions=sample["completions"], **sample["columns"])
        scores = list(scores)
    except Exception as e:
        return f"'{function}' failed on a sample: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if len(scores) != n:
        return f"'{function}' returned {len(scores)} scores for {n} completions: return one number per completion."
    for i, x in enumerate(scores):
        if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)):
            return f"'{function}' returned {x!r} for completion {i + 1}: rewards must be finite numbers (or None)."
    return ""


def save_reward(code: str, name: str, folder: Path, sample: dict) -> str:
    """Write and check a reward; its `<file>:<function>` spec, or ConfigError with the one sentence."""
    name = (name or "").strip()
    if not NAME.match(name):
        raise ConfigError("Name the reward as a Python function name (letters, digits, _; not starting with a digit).")
    if not (code or "").strip():
        raise ConfigError("The reward code is empty: write a function, e.g. def my_reward(prompts, completions, **kw).")
    try:
        compile(code, f"{name}.py", "exec")
    except SyntaxError as e:
        raise ConfigError(f"The reward code does not parse: {e.msg} (line {e.lineno}).") from None
    if not re.search(rf"^def {re.escape(name)}\s*\(", code, re.MULTILINE):
        raise ConfigError(f"The code has no function named '{name}': define def {name}(prompts, completions, **kw).")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(code, encoding="utf-8")
    request = json.dumps({"path": str(path), "function": name, "sample": sample})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "grpo_app.reward_editor"],
            input=request,
            capture_output=True,
            text=True,
            timeout=CHECK_SECONDS,
            cwd=folder,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"'{name}' did not return within {CHECK_SECONDS} s on 3 completions: a reward runs at every step."
        ) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"'{name}' crashed the check (exit {done.returncode}): {last}")
    problem = json.loads(lines[-1])["problem"]
    if problem:
        raise ConfigError(problem)
    return f"{path}:{name}"


def sample_for(prompt, columns: dict[str, list]) -> dict:
    """Three completions a reward must handle, in the shape training hands them over (text, or chat messages for
    a chat prompt): empty, a short answer, and the prompt's text copied back."""
    text = prompt_text(prompt)
    completions: list = ["", "A short answer.", text]
    if isinstance(prompt, list):
        completions = [[{"role": "assistant", "content": c}] for c in completions]
    return {
        "prompts": [prompt] * 3,
        "completions": completions,
        "columns": {k: [v[0]] * 3 for k, v in columns.items() if v},
    }


if __name__ == "__main__":  # the checking process: one JSON request on stdin, one JSON line out
    req = json.loads(sys.stdin.read())
    print(json.dumps({"problem": check_file(req["path"], req["function"], req["sample"])}))
