"""Pruning criteria: one module each, one registry (:data:`CRITERIA`) that everything lists from.

A new criterion is a new module here whose class is decorated with :func:`register`, plus its line
below.
"""

from .base import (CRITERIA, Criterion, ScoreContext, Scores, criterion_class, criterion_names, make_criterion,
                   options_dict, per_layer, register, unregister)

# the registry: one line per criterion module (importing it registers it)
from . import l1, taylor, gbn, sfp, random, beta  # noqa: E402,F401  (order: the CLI's and README's)

from .l1 import l1_scores  # noqa: E402
from .random import random_scores  # noqa: E402
from .taylor import TAYLOR_ON, taylor_scores, taylor_weight_scores  # noqa: E402

__all__ = ["CRITERIA", "Criterion", "ScoreContext", "Scores", "TAYLOR_ON", "criterion_class", "criterion_names",
           "l1_scores", "make_criterion", "options_dict", "per_layer", "random_scores", "register",
           "taylor_scores", "taylor_weight_scores", "unregister"]
