"""Errors a user can act on; a leaf module that every layer may import."""


class ConfigError(ValueError):
    """A configuration mistake the user can fix; the message says where and how."""


class DivergenceError(RuntimeError):
    """Training diverged more often than the guard may roll back."""
