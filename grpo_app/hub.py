"""The Hugging Face Hub's failures in one sentence each: an id that is not valid, not found, gated, or out of reach.

huggingface_hub retries an unreachable Hub for about 25 seconds per file; an offline user would wait that long for
each missing model or dataset, so reachability is checked first (a 3-second TCP connect) when nothing is cached.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from .errors import first_line


def is_hub_id(name: str) -> bool:
    """A Hub repo id (user/name) that is not a local path: the one rule for 'is this on the Hub?'."""
    from pathlib import Path

    name = (name or "").strip()
    return name.count("/") == 1 and all(name.split("/")) and not Path(name).expanduser().exists() and valid_id(name)


def valid_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def reachable(address: str | None = None, timeout: float = 3.0) -> bool:
    """Whether `address` (default: the Hub endpoint, HF_ENDPOINT) answers a TCP connection; a server listening on
    0.0.0.0 is tried on this machine."""
    from huggingface_hub import constants

    url = urlparse(address or constants.ENDPOINT)
    host = "127.0.0.1" if url.hostname in (None, "0.0.0.0") else url.hostname
    try:
        socket.create_connection((host, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


def cached(name: str, filename: str, repo_type: str = "model") -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, filename, repo_type=repo_type), str)
    except Exception:
        return False


def check(name: str, kind: str, filename: str, fallback: str, error: type[Exception] | None = None) -> None:
    """Raise a one-sentence error before a download that cannot work: a bad id, or no Hub and no cached copy.

    `kind` is "model" or "dataset"; `fallback` says what works offline."""
    from .config import ConfigError

    error = error or ConfigError
    if not valid_id(name):
        raise error(
            f"'{name}' is neither a local {'folder' if kind == 'model' else 'file'} nor a valid Hub "
            f"{kind} id (user/name). {fallback}"
        )
    if cached(name, filename, kind) or (not offline() and reachable()):
        return
    why = "HF_HUB_OFFLINE is set" if offline() else "the Hugging Face Hub cannot be reached (no internet?)"
    raise error(f"Cannot download {kind} '{name}': {why}, and it is not in the local cache. {fallback}")


def explain(name: str, kind: str, error: BaseException, fallback: str) -> str:
    """The sentence for a failed Hub download, from the exception chain huggingface_hub raised."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    seen, e = [], error
    while e is not None and len(seen) < 10:
        seen.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(x, GatedRepoError) for x in seen):
        return f"The {kind} '{name}' is gated: accept its terms on huggingface.co and set HF_TOKEN. {fallback}"
    if any(isinstance(x, RepositoryNotFoundError) for x in seen):
        return (
            f"No {kind} '{name}' on the Hugging Face Hub (check the spelling; a private one needs HF_TOKEN). {fallback}"
        )
    if any(isinstance(x, HFValidationError) for x in seen):
        return f"'{name}' is not a valid Hub {kind} id (user/name). {fallback}"
    if any(isinstance(x, (LocalEntryNotFoundError, ConnectionError, socket.gaierror)) for x in seen):
        return f"Cannot download {kind} '{name}': the Hugging Face Hub cannot be reached. {fallback}"
    return f"Could not load {kind} '{name}' ({type(error).__name__}: {first_line(error, 200)}). {fallback}"
