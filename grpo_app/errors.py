"""The project's own error: anything a user can fix, said in one sentence."""


class ConfigError(ValueError):
    """A user-facing configuration problem; its message is shown as is."""
