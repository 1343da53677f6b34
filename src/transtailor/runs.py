"""The run folder: resolved config, per-epoch metrics, models and the summary.

Every file is written atomically (a temporary file in the same folder, fsync, rename), so a run
killed at any moment leaves each file either complete or absent, never half-written. Under
torchrun only rank 0 writes: in the other processes every writer here does nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from .distributed import is_main
from .errors import ConfigError, RunFileError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.json"


def file_mode() -> int:
    """The mode a file the user writes gets (0o666 less the umask): ``mkstemp`` would leave 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write; renamed over ``path`` (with the
    user's file mode) when the block ends without error, removed otherwise. Any process may use it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[Any], None], *, binary: bool = False) -> Path:
    """Write ``path`` through ``write(fileobj)`` so that it appears complete or not at all (rank 0 only)."""
    path = Path(path)
    if not is_main():
        return path
    try:
        with atomic_path(path) as tmp, tmp.open("wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not _is_write_failure(str(exc)):
            raise
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise RunFileError(f"cannot write {path} ({reason}): free some disk space (or raise the file size "
                           "limit); a search or prune continues with --resume") from None
    return path


def _is_write_failure(message: str) -> bool:
    """torch.save reports a failed write (full disk, file size limit) as a RuntimeError of its zip writer."""
    low = message.lower()
    return "writ" in low or "inline_container" in low


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(path, lambda fh: json.dump(data, fh, indent=2, default=_jsonable))


def read_json(path: str | Path) -> Any:
    """A JSON file of a run; :class:`RunFileError` (one line) if it is missing, truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing: the run folder is incomplete") from None
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{path} cannot be read ({exc}): the file is damaged, e.g. cut short by a full disk "
                           "or a kill") from None


class RunDir:
    """A run folder. Create it only after all inputs were validated, so bad input writes nothing."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def create(self, *, overwrite: bool = True) -> "RunDir":
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} exists and is not a folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise ConfigError(f"--out {self.path} is not empty; choose another folder")
        if is_main():
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--out {self.path}: cannot create the folder ({exc.strerror or exc})") from None
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> Path:
        return atomic_write(self.file(CONFIG_FILE), lambda fh: yaml.safe_dump(config, fh, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        path = self.file(CONFIG_FILE)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise RunFileError(f"{path} is missing: the run folder is incomplete") from None
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise RunFileError(f"{path} cannot be read ({str(exc).splitlines()[0]}): the file is damaged") from None
        if not isinstance(data, dict):
            raise RunFileError(f"{path} is not a run's configuration (no mapping of options)")
        return data

    def reset_metrics(self) -> None:
        if is_main():
            self.file(METRICS_FILE).unlink(missing_ok=True)

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON object as a line; each line is flushed to disk before returning."""
        if not is_main():
            return
        line = json.dumps(record, default=_jsonable) + "\n"
        with open(self.file(METRICS_FILE), "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def metrics(self) -> Iterator[dict[str, Any]]:
        p = self.file(METRICS_FILE)
        if not p.exists():
            return
        for line in p.read_text().splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: everything after it is lost anyway
                    return

    def write_summary(self, summary: dict[str, Any]) -> Path:
        return write_json(self.file(SUMMARY_FILE), summary)

    def read_summary(self) -> dict[str, Any]:
        return read_json(self.file(SUMMARY_FILE))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
