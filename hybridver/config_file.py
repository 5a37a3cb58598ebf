"""``hybridver verify --config FILE.toml``: a TOML file read into a :class:`VerifyConfig`.

Top-level keys are :class:`VerifyConfig`'s fields; tables are its sub-configs, with the
same names (``[attack]``, ``[whole_box]``, ``[input_split]``, ``[activation_split]``,
``[activation_split.alpha]``, ``[domain_handoff]``, ``[scheduler]``, ``[exact]``,
``[schedule]``), and the
escalations a list of tables::

    timeout_s = 60
    [input_split]
    batch_size = 512
    [schedule]
    stages = ["sampling", "whole_box", "pgd", "input_split"]
    escalations = [{event = "handoff", after_s = 1.0}]

What the file does not set keeps its default.  An unknown key, a value of the wrong type
or a TOML syntax error is a :class:`ConfigError` naming the file and the key (or line).
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from hybridver.config import VerifyConfig
from hybridver.errors import HybridverInputError

__all__ = ["ConfigError", "config_from_dict", "load_config"]


class ConfigError(HybridverInputError):
    """A config file cannot be read into the settings tree."""


def load_config(path: str | Path) -> VerifyConfig:
    """The settings of ``path`` (a TOML file) over the defaults."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from_dict(data, str(path))


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> VerifyConfig:
    """``data`` (nested dicts as TOML gives them) read into a :class:`VerifyConfig`."""
    try:
        return _build(VerifyConfig, data, "", VerifyConfig())
    except _KeyProblem as exc:
        raise ConfigError(f"{source}: {exc}") from None


class _KeyProblem(Exception):
    pass


def _build(cls: type, data: Any, where: str, base: Any = None) -> Any:
    """``cls`` from the table ``data``; keys it leaves out keep their values in ``base``
    (the enclosing default's sub-config, e.g. ``VerifyConfig().input_split``, whose
    batch size differs from ``InputSplitConfig()``'s), or ``cls``'s defaults."""
    if not isinstance(data, dict):
        raise _KeyProblem(f"'{where or 'the top level'}' must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise _KeyProblem(f"unknown setting '{name}' (known: {', '.join(sorted(fields))})")
        sub_base = getattr(base, key, None) if base is not None else None
        if dataclasses.is_dataclass(hints[key]) and dataclasses.is_dataclass(sub_base):
            values[key] = _build(hints[key], value, name, sub_base)
        else:
            values[key] = _convert(hints[key], value, name)
    try:
        return cls(**values) if base is None else dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise _KeyProblem(f"'{where or 'the top level'}': {exc}") from None


def _convert(hint: Any, value: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, name)
            except _KeyProblem as exc:
                errors.append(str(exc))
        raise _KeyProblem(errors[0] if errors else f"'{name}': bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise _KeyProblem(f"'{name}' must be a list")
        item = args[0]
        return tuple(_convert(item, v, f"{name}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise _KeyProblem(f"'{name}' must be one of "
                              f"{', '.join(repr(m.value) for m in hint)}, not {value!r}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise _KeyProblem(f"'{name}' must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _KeyProblem(f"'{name}' must be an integer, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _KeyProblem(f"'{name}' must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _KeyProblem(f"'{name}' must be a string, not {value!r}")
        return value
    raise _KeyProblem(f"'{name}' cannot be set from a config file")
