"""Declaring an option (its default, help and choices), coercing a given value to its field's type,
and the checks every part's ``validate`` uses.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal, get_args, get_origin

from ..errors import ConfigError

def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with the help text and choices the CLI shows."""
    return field(default=default, metadata={"help": help, "choices": choices})


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# options where +inf means "never" (e.g. --tau inf: no accuracy-drop stop)
INFINITE_OK = frozenset({"tau"})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    if value is None:
        if type(None) in get_args(hint):
            return None
        raise ConfigError(f"option {key!r} needs a value")
    if get_origin(hint) is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"option {key!r} must be a mapping of option: value, got {value!r}")
        return {str(k).replace("-", "_"): v for k, v in value.items()}
    base = next((a for a in get_args(hint) if a is not type(None)), hint) if get_args(hint) else hint
    if get_origin(base) is Literal:
        base = str
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            number = float(value)
            if math.isnan(number) or (math.isinf(number) and not (key in INFINITE_OK and number > 0)):
                raise ConfigError(f"option {key!r} must be a finite number, got {value!r}")
            return number
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"option {key!r} expects {base.__name__}, got {value!r}") from None
    return value


def _unknown_option(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    return ConfigError(f"unknown option {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


def _check_size_and_crop(cfg: Any) -> None:
    if cfg.image_size is not None:
        _positive(cfg, "image_size")
    if cfg.crop_pct is not None and not 0.0 < cfg.crop_pct <= 1.0:
        raise ConfigError(f"--crop-pct must be in (0, 1], got {cfg.crop_pct}")


def _positive(cfg: Any, *names: str) -> None:
    for n in names:
        if getattr(cfg, n) <= 0:
            raise ConfigError(f"--{n.replace('_', '-')} must be positive, got {getattr(cfg, n)}")


def _non_negative(cfg: Any, *names: str) -> None:
    for n in names:
        if getattr(cfg, n) < 0:
            raise ConfigError(f"--{n.replace('_', '-')} must not be negative, got {getattr(cfg, n)}")


def _fraction(cfg: Any, name: str, *, lo_open: bool) -> None:
    v = getattr(cfg, name)
    ok = (0.0 < v < 1.0) if lo_open else (0.0 <= v < 1.0)
    if not ok:
        rng = "(0, 1)" if lo_open else "[0, 1)"
        raise ConfigError(f"--{name.replace('_', '-')} must be in {rng}, got {v}")


def _check_choices(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        choices = f.metadata.get("choices")
        v = getattr(cfg, f.name)
        if choices and v is not None and v not in choices:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be one of {', '.join(choices)}, got {v!r}")
