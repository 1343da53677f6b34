"""What a pruning criterion is, and the one registry every criterion is listed in.

A criterion scores every output channel of every gate site (``scores[site.module]``, higher = more
important), which :func:`~transtailor.pruning.pruner.prune_to_budget` ranks globally (coupled channels
summed). Each criterion is a class in a module of its own that declares

- ``name`` and a one-line ``summary`` (the CLI's help and README's method list read them),
- ``Options``: a dataclass of :func:`~transtailor.config.option` fields, its own options with their
  defaults (each is a flag of ``prune``, ``search`` and ``compare``), or ``None``,
- ``needs_data``: whether scoring reads the train split,
- ``scope`` (``global`` or ``layer``: ranked across layers, or each against its own layer's mean) and
  ``flops_aware`` (rank by score per MAC saved), its defaults for ``--scope`` and ``--flops-aware``,
- ``soft``: it prunes while fine-tuning (SFP): the loop scores after every epoch instead of once,

and is called with a :class:`ScoreContext` to return :class:`Scores`. :func:`register` lists it, as
timm's ``@register_model`` does; the package's ``__init__`` imports each criterion module (one line
each), and everything that lists criteria reads :data:`CRITERIA`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, TypeVar

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ...config import METHOD_OPTIONS, build_method_options, method_option_fields, register_method_options
from ...errors import ConfigError
from ..gates import GateSite


@dataclass
class ScoreContext:
    """What a criterion may read: the model as it is now, its gate sites, the train split, and a seed
    that depends only on (run seed, iteration)."""

    model: nn.Module
    sites: list[GateSite]
    loader: DataLoader
    device: torch.device
    seed: int = 0
    #: called with a metrics record for each training epoch a criterion runs (α training)
    log: Callable[[dict[str, Any]], None] = lambda record: None


@dataclass
class Scores:
    """One score per channel of every gate site, what to save beside them, and seconds per phase by
    name (e.g. ``{"alpha": ..., "beta": ...}``, recorded as ``seconds_alpha``...; empty: the whole call
    is recorded as ``seconds_score``)."""

    scores: dict[str, torch.Tensor]
    saved: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


O = TypeVar("O")


class Criterion(Generic[O]):
    """Base class: subclasses set the class attributes below and implement :meth:`__call__`;
    ``Criterion[TheirOptions]`` types :attr:`options` (``Criterion[None]`` without options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type | None] = None
    needs_data: ClassVar[bool] = False
    scope: ClassVar[str] = "global"
    flops_aware: ClassVar[bool] = False
    soft: ClassVar[bool] = False

    #: an instance of :attr:`Options` (or None when the criterion has none)
    options: O

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def __call__(self, ctx: ScoreContext) -> Scores:
        raise NotImplementedError

    def train_passes(self) -> float:
        """Passes over the train split one scoring makes, each counted as a training epoch of the model being
        scored (a criterion that reads data back-propagates once by default; one that does not, none)."""
        return 1.0 if self.needs_data else 0.0


#: every registered criterion, by name, in registration order
CRITERIA: dict[str, type[Criterion]] = {}


C = TypeVar("C", bound=type[Criterion])


def register(cls: C) -> C:
    """Class decorator: list ``cls`` under ``cls.name`` and declare its options."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.Options is not None:
        register_method_options(cls.name, cls.Options)
    CRITERIA[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a criterion (and its options) from the registry."""
    CRITERIA.pop(name, None)
    METHOD_OPTIONS.pop(name, None)


def criterion_names(*, soft: bool | None = None) -> list[str]:
    """Registered names (only those that prune while training, or only those that do not, if asked)."""
    return [n for n, c in CRITERIA.items() if soft is None or c.soft == soft]


def criterion_class(name: str, what: str = "--method") -> type[Criterion]:
    """The criterion called ``name``; :class:`ConfigError` naming the choices if there is none."""
    try:
        return CRITERIA[name]
    except KeyError:
        raise ConfigError(f"{what} must be one of {', '.join(CRITERIA)}, got {name!r}") from None


def make_criterion(name: str, method_options: dict[str, Any] | None = None, what: str = "--method",
                   strict: bool = False) -> Criterion:
    """An instance of criterion ``name`` with its own options taken from ``method_options``; ``strict``
    refuses options of other criteria (they would be ignored)."""
    cls = criterion_class(name, what)
    given = method_options or {}
    if strict:
        owners = {key: owner for key, (owner, _) in method_option_fields().items()}
        for key in given:
            if owners.get(key) != name:
                raise ConfigError(f"--{key.replace('_', '-')} is an option of {owners.get(key, 'no criterion')}, "
                                  f"not of {what} {name}: drop it")
    return cls(build_method_options(name, given))


def options_dict(criterion: Criterion) -> dict[str, Any]:
    """The criterion's options as a plain dict (empty when it has none)."""
    return dataclasses.asdict(criterion.options) if criterion.options is not None else {}


def per_layer(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each site's scores divided by their mean (``--scope layer``)."""
    return {k: v / v.mean().clamp_min(1e-12) for k, v in scores.items()}
