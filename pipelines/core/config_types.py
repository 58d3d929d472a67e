"""The config's error and its list coercion, shared by pipelines/core/config.py and the config sections kept in
their own modules (pipelines/core/config_hygiene.py) so that no module grows past a readable size."""

from __future__ import annotations


class ConfigError(ValueError):
    """The configuration names an unknown key or holds a value of the wrong kind."""


def str_tuple(obj: object, name: str, value: object) -> None:
    """YAML gives a list, `--set` a comma-separated string: store either as a tuple of strings."""
    if isinstance(value, str):
        value = tuple(v.strip() for v in value.split(",") if v.strip())
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config key '{name}' must be a list of strings, got {value!r}")
    object.__setattr__(obj, name.rsplit(".", 1)[-1], tuple(value))
