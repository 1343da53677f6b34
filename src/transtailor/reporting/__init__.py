"""Reporting: per-iteration tables and the plots of a run folder."""

from .plots import draw_search_plots
from .tables import iteration_table, markdown_table, mean_std, search_table

__all__ = ["draw_search_plots", "iteration_table", "markdown_table", "mean_std", "search_table"]
