"""A YAML or CLI value turned into a config field's type, or one sentence that names the key.

Only plain data gets through, so that every config that loads also writes back as the same YAML and compares
cleanly in `validate` and in TRL; the parsers are fuzzed with hypothesis (tests/test_fuzz.py).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import yaml

from .errors import ConfigError


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a YAML/CLI value into the field's type, with a message that names the key.

    Only plain data gets through: text, true/false, ints within 64 bits, floats, and lists or text-keyed mappings of
    those. That is what `to_yaml` writes back as the same value (config.yaml reloads as it was) and what `validate`
    and TRL can compare without a TypeError. YAML's dates become the text they were written as; bytes, sets, a
    container where a scalar belongs and self-referencing YAML (anchors) are refused.
    """
    import datetime
    import reprlib

    kind, args = typing.get_origin(annotation) or annotation, typing.get_args(annotation)
    if isinstance(annotation, str):
        kind = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}.get(annotation)
    if kind in (types.UnionType, typing.Union):  # TRL's `float | None`, `list[str] | None`, `dict | str | None`...
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        only = options[0] if len(options) == 1 else None
        kind, args = typing.get_origin(only) or only, typing.get_args(only)
    number = "number"  # reward.weights: ints stay ints, text such as 1e-3 (YAML 1.1 reads it as text) is parsed,
    # and other text, true/false or null stay as they are for `validate` to name ("must be numbers")
    item = args[0] if kind is list and args else (number if key == "reward.weights" else str)

    def scalar(v: Any, want: Any) -> Any:
        if want is bool:
            if isinstance(v, bool):
                return v
            word = str(v).strip().lower() if isinstance(v, (str, int)) else None
            if word in ("true", "1", "yes", "on"):
                return True
            if word in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if want is str:
            if isinstance(v, str):
                v.encode("utf-8")  # a lone surrogate cannot be written out
                if "\x85" in v:  # YAML reads NEL as a line break: the value would not come back
                    raise ValueError
                return v
            if v is None:
                return ""
            if isinstance(v, (int, float, datetime.date)):
                return str(v)
            raise TypeError
        if want is number:
            if isinstance(v, str):
                try:
                    return float(v)
                except ValueError:
                    return scalar(v, str)
            return v if v is None or isinstance(v, (bool, float)) else scalar(v, int)
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise TypeError
        if want is int:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            v = int(v)
            if not -(2**63) <= v < 2**63:  # a typo, and past 4300 digits an int has no str() to write YAML with
                raise ValueError
            return v
        if want is float:
            return float(v)  # OverflowError for an int past the float range
        raise TypeError

    def plain(v: Any, depth: int, budget: list[int]) -> Any:
        budget[0] -= 1
        if depth > 32 or budget[0] < 0:  # YAML anchors can build a cycle or a billion-laughs tree
            raise ValueError
        if v is None or isinstance(v, (bool, float)):
            return v
        if isinstance(v, int):
            return scalar(v, int)
        if isinstance(v, (str, datetime.date)):
            return scalar(v, str)
        if isinstance(v, (list, tuple)):
            return [plain(x, depth + 1, budget) for x in v]
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {scalar(k, str): plain(x, depth + 1, budget) for k, x in v.items()}
        raise TypeError

    try:
        if kind in (bool, int, float, str):
            return scalar(value, kind)
        if kind is list:
            if isinstance(value, str):  # the CLI's comma-separated form: a,b or 1,0.5
                parts, value = [p.strip() for p in value.split(",") if p.strip()], []
                for part in parts:
                    try:
                        parsed = yaml.safe_load(part)
                    except (yaml.YAMLError, ValueError, RecursionError):
                        parsed = part
                    value.append(parsed if isinstance(parsed, str) or item is not str else part)
            if not isinstance(value, (list, tuple)):
                raise TypeError
            if item in (bool, int, float, str, number):
                return [scalar(v, item) for v in value]
            return plain(value, 0, [10_000])
        if kind is dict and not isinstance(value, dict):
            raise TypeError
        return plain(value, 0, [10_000])
    except (TypeError, ValueError, OverflowError):
        try:
            shown = reprlib.repr(value)
        except ValueError:  # an int over 4300 digits has no repr
            shown = f"a {type(value).__name__} too large to show"
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        names = {
            bool: "bool (true or false)",
            int: "int",
            float: "float",
            str: "str",
            number: "numbers",
            dict: "dict with text keys",
        }
        expected = names.get(kind, "plain data (text, numbers, true/false, lists, mappings with text keys)")
        if kind is list:
            expected = f"list of {names.get(item, 'plain data')}"
        raise ConfigError(f"{key}: expected {expected}, got {shown}.") from None
