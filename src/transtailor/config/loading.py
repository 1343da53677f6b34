"""Building a config: presets, a YAML file and flags, in that order of precedence, checked by name
and type; and the plain dict a run folder's ``config.yaml`` holds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, TypeVar, get_type_hints

import yaml

from ..errors import ConfigError
from .fields import _coerce, _field_names, _unknown_option
from .method_options import _coerce_method_option, method_option_fields
from .presets import PRESETS


C = TypeVar("C")


def resolve(cls: type[C], *, flags: Mapping[str, Any] | None = None, config_file: str | Path | None = None) -> C:
    """Build a validated ``cls`` from defaults, preset, YAML file and explicit flags."""
    flags = dict(flags or {})
    from_file = load_yaml(config_file) if config_file else {}
    preset = flags.get("preset", from_file.get("preset"))
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        values.update({k: v for k, v in PRESETS[preset].items() if k in _field_names(cls)})
    values.update(from_file)
    values.update(flags)
    return from_dict(cls, values)


def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
    """Build ``cls`` from a mapping, checking names and types; raises :class:`ConfigError`."""
    names = _field_names(cls)
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    flat = method_option_fields() if "method_options" in names else {}
    given: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key == "method_options" and key in names:
            if not isinstance(value, Mapping):
                raise ConfigError("option 'method_options' must be a mapping of option: value")
            given.update({str(k).replace("-", "_"): v for k, v in value.items()})
            continue
        if key in flat:
            given[key] = value
            continue
        if key not in names:
            raise _unknown_option(str(raw_key), [*names, *flat])
        kwargs[key] = _coerce(key, value, hints[key])
    if given:
        kwargs["method_options"] = {k: _coerce_method_option(k, v) for k, v in given.items()}
    cfg = cls(**kwargs)
    cfg.validate()  # type: ignore[attr-defined]
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of options."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain dict (what ``config.yaml`` in a run folder holds); method options flat."""
    out = dataclasses.asdict(cfg)
    out.update(out.pop("method_options", None) or {})
    return out



