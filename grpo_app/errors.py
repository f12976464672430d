"""The project's own error: anything a user can fix, said in one sentence."""


class ConfigError(ValueError):
    """A user-facing configuration problem; its message is shown as is."""


class ExportError(ConfigError):
    """Export or push could not be done; the message says why and what was kept."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-sentence error."""
    text = " ".join((str(e).strip().splitlines() or [""])[0].split())
    return text[:limit] if text else type(e).__name__
