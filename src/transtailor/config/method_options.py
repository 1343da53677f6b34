"""The pruning criteria's own options: each criterion declares a dataclass of them, a config keeps
them in one ``method_options`` dict and takes them as flat options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Mapping, get_type_hints

from .fields import _check_choices, _coerce, _field_names, _unknown_option

#: the options each pruning criterion declares (:mod:`transtailor.pruning.criteria`), by criterion name:
#: a dataclass of :func:`option` fields. A config with a ``method_options`` field takes their fields as
#: flat options (``--taylor-on weight``, ``taylor_on: weight``) and keeps them in that dict.
METHOD_OPTIONS: dict[str, type] = {}


def register_method_options(owner: str, part: type) -> None:
    """Declare ``owner``'s options (a dataclass of :func:`option` fields); names are unique across owners."""
    taken = {name: o for name, (o, _) in method_option_fields().items() if o != owner}
    for f in dataclasses.fields(part):
        if f.name in taken:
            raise ValueError(f"option {f.name!r} of {owner!r} is already declared by {taken[f.name]!r}")
    METHOD_OPTIONS[owner] = part


def method_option_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every declared method option: name -> (its criterion, its field)."""
    return {f.name: (owner, f) for owner, part in METHOD_OPTIONS.items() for f in dataclasses.fields(part)}


def build_method_options(owner: str, given: Mapping[str, Any]) -> Any | None:
    """``owner``'s options object (None when it declares none): the values in ``given`` that are its own,
    its defaults for the rest, checked against their choices and by the part's own ``__post_init__``."""
    part = METHOD_OPTIONS.get(owner)
    if part is None:
        return None
    names = _field_names(part)
    options = part(**{k: v for k, v in given.items() if k in names})
    _check_choices(options)
    return options


def method_options_of(owner: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`build_method_options` as a plain dict."""
    options = build_method_options(owner, given)
    return {} if options is None else dataclasses.asdict(options)


def _method_options_field() -> Any:
    return field(default_factory=dict, metadata={"help": "the criteria's own options, by name (each is also a "
                                                 "flag of its own, e.g. --taylor-on)", "flat": True})


def _coerce_method_option(key: str, value: Any) -> Any:
    fields = method_option_fields()
    if key not in fields:
        raise _unknown_option(key, sorted(fields))
    owner = fields[key][0]
    return _coerce(key, value, get_type_hints(METHOD_OPTIONS[owner])[key])


def _check_method_options(values: Mapping[str, Any]) -> None:
    """Every method option is declared and passes its criterion's checks. Before any criterion is
    imported nothing is declared: ``prune`` and ``search`` check them against the registry then."""
    fields = method_option_fields()
    if not fields:
        return
    for key in values:
        if key not in fields:
            raise _unknown_option(key, sorted(fields))
    for owner in {fields[k][0] for k in values}:
        build_method_options(owner, values)
