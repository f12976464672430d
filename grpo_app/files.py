"""Writing files so that a crash, a kill or a full disk never leaves half of one behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Temp file + rename in the same folder: readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def keep_upload(source: Path, folder: Path) -> Path:
    """A copy of an uploaded file in `folder` under its own name (a different file of that name gets `-2`, `-3`...):
    Gradio's temporary copy, /tmp/gradio/<hash>/posts.csv, is neither a name users know nor kept."""
    folder.mkdir(parents=True, exist_ok=True)
    target, i = folder / source.name, 1
    while target.exists() and target.read_bytes() != source.read_bytes():
        i += 1
        target = folder / f"{source.stem}-{i}{source.suffix}"
    shutil.copyfile(source, target)
    return target
