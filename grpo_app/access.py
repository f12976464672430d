"""What a visitor of the app may do: everything on a laptop; on a public deployment only what the operator allows.

Public mode is on when `SPACE_ID` is set (a Hugging Face Space) or `GRPO_STUDIO_PUBLIC=1`. Then every input that
names data, a model or an adapter accepts only the bundled data, uploads and Hub ids, never a path on the server;
custom reward code (`file.py:function`) runs only if the operator sets `GRPO_STUDIO_ALLOW_CUSTOM_REWARDS=1`; and
deleting or renaming runs needs `GRPO_STUDIO_ALLOW_MANAGE=1`. The CLI is the operator and is not limited.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError
from .data import BUNDLED, FILE_TYPES


def default_runs_root() -> str:
    """GRPO_STUDIO_RUNS, else the Space's persistent storage (/data) when it is there, else ./runs."""
    if os.environ.get("GRPO_STUDIO_RUNS"):
        return os.environ["GRPO_STUDIO_RUNS"]
    data = Path("/data")
    return str(data / "runs") if data.is_dir() and os.access(data, os.W_OK) else "runs"


def runs_are_lost_on_restart(runs_root: str | Path) -> bool:
    """On a Space, anything outside /data vanishes when the Space restarts."""
    return bool(os.environ.get("SPACE_ID")) and not _inside(runs_root, Path("/data"))


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value in ("1", "true", "yes", "on")


def upload_folder() -> Path:
    """Where Gradio keeps uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), the one server folder visitors fill."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def _inside(path: str | Path, folder: Path) -> bool:
    try:
        Path(path).expanduser().resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _looks_like_path(name: str) -> bool:
    p = Path(name).expanduser()
    return (
        name.startswith((".", "/", "~", "\\"))
        or name.count("/") > 1
        or "\\" in name
        or ":" in name
        or p.suffix.lower() in FILE_TYPES
        or p.exists()
    )


@dataclass(frozen=True)
class Policy:
    public: bool = False
    custom_rewards: bool = True
    manage_runs: bool = True
    runs_root: Path = Path("runs")
    max_upload_mb: float = 50.0
    max_steps: int = 0  # caps for public use (0 = none): steps per run, minutes per run
    max_minutes: float = 0

    @classmethod
    def from_env(cls, runs_root: str | Path = "runs") -> Policy:
        public = bool(os.environ.get("SPACE_ID")) or env_flag("GRPO_STUDIO_PUBLIC")
        return cls(
            public=public,
            custom_rewards=env_flag("GRPO_STUDIO_ALLOW_CUSTOM_REWARDS", default=not public),
            manage_runs=env_flag("GRPO_STUDIO_ALLOW_MANAGE", default=not public),
            runs_root=Path(runs_root),
            max_upload_mb=float(os.environ.get("GRPO_STUDIO_MAX_UPLOAD_MB") or 50),
            max_steps=int(os.environ.get("GRPO_STUDIO_MAX_STEPS") or 0),
            max_minutes=float(os.environ.get("GRPO_STUDIO_MAX_MINUTES") or 0),
        )

    @property
    def owned_runs(self) -> bool:
        """On a public app only the visitor who started a run may stop it."""
        return self.public

    def caps(self) -> str:
        """The operator's caps, for the page."""
        out = [f"uploads up to {self.max_upload_mb:g} MB"]
        if self.max_steps:
            out.append(f"at most {self.max_steps} steps per run (and per warm-up)")
        if self.max_minutes:
            out.append(f"at most {self.max_minutes:g} minutes per run")
        return ", ".join(out)

    def apply_caps(self, cfg: Config) -> str:
        """Bring a run within the step cap, its warm-up's steps too (a note says so); the minute cap is the job's
        to keep."""
        g, notes = cfg.grpo, []
        if self.max_steps and (g.max_steps <= 0 or g.max_steps > self.max_steps):
            g.max_steps = self.max_steps
            notes.append(f"This app runs at most {self.max_steps} steps per run; max steps set to {self.max_steps}.")
        if self.max_steps and cfg.sft.steps > self.max_steps:
            cfg.sft.steps = self.max_steps
            notes.append(f"Warm-up steps set to {self.max_steps}, this app's cap.")
        return " ".join(notes)

    @property
    def host(self) -> str:
        """Where the server listens: this machine only, unless asked or on a Space (which must be reachable)."""
        return os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")

    def allowed_paths(self) -> list[str]:
        """The only folders Gradio may serve files from, besides its own cache: run folders and assets."""
        from .data import ASSETS

        return [str(self.runs_root.resolve()), str(ASSETS)]

    def check_dataset(self, path: str) -> None:
        """Bundled, an upload, or a Hub id: a visitor never reads a file of the server."""
        if not self.public or path in ("", *BUNDLED):
            return
        if _inside(path, upload_folder()) or _inside(path, self.runs_root / "uploads"):  # Gradio's copy, or ours
            size_mb = Path(path).stat().st_size / 2**20 if Path(path).is_file() else 0
            if size_mb > self.max_upload_mb:
                raise ConfigError(
                    f"The uploaded file is {size_mb:,.1f} MB, over this app's {self.max_upload_mb:g} MB limit."
                )
            return
        if _looks_like_path(path):
            raise ConfigError(
                f"On this public app the dataset is one of {', '.join(map(repr, BUNDLED))}, "
                "a Hub dataset id (user/name) or a file you upload; server paths are not read."
            )

    def check_model(self, name: str) -> None:
        if self.public and name not in ("", "default") and _looks_like_path(name):
            raise ConfigError(
                "On this public app the model is 'default' or a Hub id (user/name); server folders are not loaded."
            )

    def check_adapter(self, path: str | None) -> None:
        """A run's adapter under the runs folder, or a Hub id."""
        if not self.public or not path or _inside(path, self.runs_root):
            return
        if _looks_like_path(path):
            raise ConfigError(
                "On this public app an adapter is a run's adapter (pick it in the list) or a Hub id "
                "(user/name); other server folders are not loaded."
            )

    def run_folder(self, path: str | None) -> Path:
        """A run chosen in the page: always a folder directly under the runs folder, whatever the request says."""
        if not path:
            raise ConfigError("Choose a run first (Past runs).")
        p = Path(path)
        if p.resolve().parent != self.runs_root.resolve():
            raise ConfigError(f"'{path}' is not a run of this app (runs live in {self.runs_root}).")
        return p

    def check_config(self, cfg: Config) -> None:
        """Everything a visitor's settings could reach beyond what the operator allows."""
        self.check_model(cfg.model.name)
        self.check_dataset(cfg.data.path)
        if cfg.sft.extra_data:
            try:
                self.check_dataset(cfg.sft.extra_data)
            except ConfigError as e:
                raise ConfigError(f"sft.extra_data: {e}") from None
        if cfg.run.resume_from:
            self.check_adapter(cfg.run.resume_from)
        custom = [f for f in cfg.reward.functions + cfg.reward.monitor if ":" in f]
        if custom and not self.custom_rewards:
            raise ConfigError(
                f"Custom reward code ({custom[0]}) is off on this app: use the built-in rewards "
                "(the operator can allow it with GRPO_STUDIO_ALLOW_CUSTOM_REWARDS=1)."
            )
        if self.public and cfg.grpo.vllm_server_base_url:
            raise ConfigError("On this public app the vLLM server address is the operator's to set; leave it empty.")
        if self.public and cfg.model.trust_remote_code:
            raise ConfigError("Models that ship their own code are off on this public app.")

    def check_manage(self) -> None:
        if not self.manage_runs:
            raise ConfigError(
                "Renaming and deleting runs is off on this public app (the operator can allow it with "
                "GRPO_STUDIO_ALLOW_MANAGE=1)."
            )

    def check_export_folder(self, out: str | None) -> None:
        if self.public and (out or "").strip():
            raise ConfigError("On this public app an export goes into the run's own folder: leave Folder empty.")
