"""A latency lookup table: the measured time of single layers at given shapes, cached on disk.

An entry is one layer spec (:class:`~.base.LayerSpec`: kind, channels, kernel, stride, groups,
input size, BatchNorm) timed on its own at the table's batch size. Its value does not depend on
the layer's weights or on the network around it, so a table is shared by every model, iteration,
run and ``compare`` on the same target. The file is keyed by everything the time depends on
besides the layer: target, device (CPU model or GPU name), threads, batch, library versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

from ...models.timing import TimingSetup, device_name, library_versions, make_runner, time_runner_quick
from ...runs import atomic_path
from .base import LayerSpec

log = logging.getLogger("transtailor")

#: seconds of Timer measurement per table entry and pass
ENTRY_RUN_TIME = 0.02
#: passes over the missing entries; an entry keeps its fastest pass
PASSES = 3


def default_cache_dir() -> Path:
    """``$TRANSTAILOR_CACHE/latency``, or ``~/.cache/transtailor/latency``."""
    root = os.environ.get("TRANSTAILOR_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "transtailor") / "latency"


def time_spec(spec: LayerSpec, setup: TimingSetup) -> float:
    """Milliseconds of one forward pass of ``spec`` alone on ``setup``'s target."""
    fn = make_runner(spec.module(), spec.input_shape(setup.batch), setup)
    fn()
    return 1000.0 * time_runner_quick(fn, setup, ENTRY_RUN_TIME)


class LatencyTable:
    """Milliseconds per layer spec on one target, measured on demand and cached in one JSON file.

    Missing entries are timed in ``passes`` passes over all of them and each keeps its fastest:
    on a shared or throttled machine noise only ever adds time, and a burst lasting seconds hits
    one pass of an entry, not all (one burst in a single pass once made a layer look three times
    slower than it is and drew a whole pruning step onto it).

    ``timer`` replaces the measurement (a function of the spec), e.g. for tests or a table made
    elsewhere; ``measured`` counts the entries this instance had to time.
    """

    def __init__(self, setup: TimingSetup, cache_dir: str | Path | None = None,
                 timer: Callable[[LayerSpec], float] | None = None, passes: int = PASSES) -> None:
        self.setup = setup
        self.passes = max(passes, 1)
        self.timer = timer or (lambda spec: time_spec(spec, setup))
        self.identity = {"target": setup.target, "device": device_name(setup.target), "threads": setup.threads,
                         "batch": setup.batch, **library_versions(setup.target)}
        if timer is not None:
            self.identity["timer"] = getattr(timer, "__name__", "custom")
        digest = hashlib.sha1(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(cache_dir or default_cache_dir()) / f"{setup.target}-b{setup.batch}-{digest}.json"
        self.entries: dict[str, float] = self._read()
        self.measured = 0
        self._dirty = False

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            if data.get("identity") == self.identity:
                return {str(k): float(v) for k, v in data["entries"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return {}

    def lookup(self, specs: list[LayerSpec]) -> list[float]:
        """The time of each spec in ms, timing (and caching) those not in the table yet."""
        missing = list(dict.fromkeys(s for s in specs if s.key() not in self.entries))
        if missing:
            log.info("latency table: timing %d layer shapes on %s (batch %d); cached in %s", len(missing),
                     self.setup.target, self.setup.batch, self.path)
        best: dict[str, float] = {}
        for _ in range(self.passes):
            for spec in missing:
                t = float(self.timer(spec))
                best[spec.key()] = min(t, best.get(spec.key(), t))
        self.entries.update(best)
        self.measured += len(missing)
        self._dirty = self._dirty or bool(missing)
        if missing:
            self.save()
        return [self.entries[s.key()] for s in specs]

    def save(self) -> None:
        """Merge this table into its file (another process may have added entries) and write it atomically."""
        if not self._dirty:
            return
        merged = {**self._read(), **self.entries}
        try:
            with atomic_path(self.path) as tmp, tmp.open("w") as fh:
                json.dump({"identity": self.identity, "entries": merged}, fh, indent=0, sort_keys=True)
            self._dirty = False
        except OSError as exc:  # a read-only cache costs time, not the run
            log.warning("latency table: could not write %s (%s); it is kept in memory only", self.path, exc)
