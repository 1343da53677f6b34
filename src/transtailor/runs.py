"""The run folder: resolved config, per-epoch metrics, models and the summary.

Every file is written atomically (a temporary file in the same folder, fsync, rename), so a run
killed at any moment leaves each file either complete or absent, never half-written. Under
torchrun only rank 0 writes: in the other processes every writer here does nothing.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import yaml

from .distributed import is_main
from .errors import ConfigError, RunFileError

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions.json"
#: a trained model's record (an iteration's, the recovered sub-model's, the candidate's) in its folder
RECORD_FILE = "metrics.json"
#: a search's models trained after its steps: the recovered sub-model, the lower-resolution candidate
RECOVERED_DIR = "recovered"
RESOLUTION_DIR = "resolution"
#: held by the process that writes a run (or comparison) folder; see :func:`claim`
LOCK_FILE = ".transtailor.lock"

# the files a run folder (or an iteration's folder in it) is made of: no command that writes a file the
# user names ever replaces them
RUN_FILES = frozenset({MODEL_FILE, CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, PREDICTIONS_FILE, "state.json",
                       "iterations.json", RECORD_FILE, "importance.pt", "pruning.json", "latency.json",
                       "compare.json", "compare_config.json", "compare.md", LOCK_FILE})


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


def holds_files(folder: str | Path) -> bool:
    """Whether ``folder`` exists and holds anything but a lock file (a run's, or one a killed run left)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir())


def check_output(dst: str | Path, *, force: bool, sources: tuple[str | Path, ...] = (),
                 flag: str = "--output") -> Path:
    """Refuse to write a file the user named where it would lose something: a folder, one of a run
    folder's own files (never, even with ``force``), one of ``sources`` (the files the command reads),
    or any other existing file unless ``force``. Every command that writes a user-named file calls this."""
    dst = Path(dst)
    if dst.is_dir():
        raise ConfigError(f"{flag} {dst} is a folder: name a file in it")
    if not dst.exists():
        return dst
    if any(dst.resolve() == Path(src).resolve() for src in sources) or (dst.name in RUN_FILES and
                                                                          _in_run_folder(dst)):
        raise ConfigError(f"{flag} {dst} is one of the run's own files: choose another name")
    if not force:
        raise ConfigError(f"{flag} {dst} exists: pass --force to replace it, or choose another name")
    return dst


def _in_run_folder(path: Path) -> bool:
    here = path.resolve().parent
    return any((d / CONFIG_FILE).is_file() or (d / "compare_config.json").is_file()
               for d in (here, here.parent, here.parent.parent))


# the run folders this process holds: resolved path -> open lock file (see :func:`claim`)
_HELD: dict[Path, int] = {}


def claim(folder: str | Path, flag: str = "--out") -> None:
    """Take ``folder`` for this process, or stop with one line if another process holds it.

    The lock is an ``fcntl`` lock on ``folder/.transtailor.lock``, which holds the owner's PID and host
    for the message. The operating system drops it when the process ends however it ends (a kill -9
    included), so a lock left by a dead process never blocks: there is nothing stale to detect. A
    process may claim a folder it already holds. Only rank 0 claims; elsewhere (no ``fcntl``) nothing
    is locked."""
    folder = Path(folder)
    key = folder.resolve()
    if not is_main() or key in _HELD:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX
        return
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(f"{flag} {folder} is being written by another TransTailor process ({owner}); wait for "
                              f"it to end, or choose another {flag}") from None
        try:  # the holder may have removed the file between our open and our lock: lock the file that is there
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}".encode())
    _HELD[key] = fd


def release(folder: str | Path) -> None:
    """Give up a folder this process claimed (its lock file goes too)."""
    fd = _HELD.pop(Path(folder).resolve(), None)
    if fd is None:
        return
    Path(folder, LOCK_FILE).unlink(missing_ok=True)  # removed while held: no one else can hold this one
    os.close(fd)


@atexit.register
def _release_all() -> None:
    for folder in list(_HELD):
        release(folder)


F = TypeVar("F", bound=Callable[..., Any])


def releases_folders(fn: F) -> F:
    """Decorate a command: the run folders it claims are released when it returns or raises."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = set(_HELD)
        try:
            return fn(*args, **kwargs)
        finally:
            for folder in set(_HELD) - before:
                release(folder)
    return wrapper  # type: ignore[return-value]


class RunDir:
    """A run folder. Create it only after all inputs were validated, so bad input writes nothing."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def create(self, *, overwrite: bool = True) -> "RunDir":
        """Make the folder and claim it for this process (:func:`claim`); without ``overwrite`` a folder that
        holds files already, e.g. those a run that just ended wrote, is refused."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"--out {self.path} exists and is not a folder")
        if not is_main():  # rank 0 makes, claims and checks the folder for every rank
            return self
        if not overwrite:
            self.refuse_if_taken()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {self.path}: cannot create the folder ({exc.strerror or exc})") from None
        claim(self.path)
        if holds_files(self.path) and not overwrite:  # another run filled it between the check and the claim
            release(self.path)
            self.refuse_if_taken()
        return self

    def refuse_if_taken(self) -> None:
        """One line if the folder already holds a run: runs are never overwritten."""
        if holds_files(self.path):
            raise ConfigError(f"--out {self.path} already holds a run; choose another folder (runs are never "
                              "overwritten)")

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
