"""What removing channels costs, in the unit the pruning budget is spent in.

- :class:`~.macs.MacCost`: multiply-accumulates of one image (``torch.utils.flop_counter``).
- :class:`~.latency.LatencyCost`: time on the target device, read from a :class:`~.table.LatencyTable`
  of the affected layers measured at their kept widths and cached on disk.

Both answer the same two questions for the selection routine in :mod:`..pruner`: the model's
total now, and, for one coupled group of channels, the cost of the layers it touches at each kept
width (the other groups at their current widths).
"""

from .base import Cost, GroupLayers, LayerSpec, layer_specs
from .latency import LatencyCost
from .macs import MacCost
from .table import LatencyTable, default_cache_dir

COSTS = ("macs", "latency")

__all__ = ["COSTS", "Cost", "GroupLayers", "LatencyCost", "LatencyTable", "LayerSpec", "MacCost",
           "default_cache_dir", "layer_specs"]
