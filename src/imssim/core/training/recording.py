"""Session recordings: JSON lines, one header line then one record per line (docs/recording.md).

Each record is flushed to the operating system as it is written, so a crash of imssim loses
at most the record being written; the file is fsynced to disk at most one second after the
last record (a timer) and on close, so a power cut loses at most the last second. An
existing file is never truncated. The reader tolerates a truncated last line (it is dropped
and ``Recording.truncated`` is set) and reads every line through :mod:`imssim.core.safefile`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "imssim-recording"
VERSION = 1
FLUSH_INTERVAL_S = 1.0
#: Largest recording imssim reads (hours of wheel-by-wheel needling fit in a few MB).
MAX_RECORDING_BYTES = 256 * 1024 * 1024
#: Deepest nesting in one record (records need 4).
MAX_RECORD_DEPTH = 16


class RecordingError(ValueError):
    """A recording that cannot be read (message names the file and line)."""


class RecordingWriter:
    """Append records to a new JSON-lines file as the session goes.

    Refuses to open a file that exists (a recording is never truncated). Every record is
    flushed to the OS at once and fsynced by a timer at most ``fsync_interval_s`` after it
    was written (and on close), so an idle trainee's last records reach the disk too.
    """

    def __init__(self, path, header: dict, fsync_interval_s: float = FLUSH_INTERVAL_S):
        self.path = Path(path)
        try:
            self._f = open(self.path, "x", encoding="utf-8")
        except FileExistsError:
            raise RecordingError(f"{self.path}: already exists; a recording is never overwritten") from None
        except OSError as e:
            raise RecordingError(f"{self.path}: cannot write: {e.strerror or e}") from None
        self._fsync_interval = fsync_interval_s
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.syncs = 0  # how many fsyncs were done (tests)
        self.write({"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **header})

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()  # to the OS every record: a crash of imssim loses nothing written
            if self._timer is None:  # to the disk at most fsync_interval_s from now
                self._timer = threading.Timer(self._fsync_interval, self._sync)
                self._timer.daemon = True
                self._timer.start()

    def _sync(self) -> None:
        with self._lock:
            self._timer = None
            if not self._f.closed:
                os.fsync(self._f.fileno())
                self.syncs += 1

    def rename(self, path) -> None:
        """Move the (open) recording to ``path``, which must not exist."""
        path = Path(path)
        with self._lock:
            if path.exists():
                raise RecordingError(f"{path}: already exists; a recording is never overwritten")
            os.replace(self.path, path)
            self.path = path

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._f.closed:
                self._f.flush()
                os.fsync(self._f.fileno())
                self.syncs += 1
                self._f.close()

    def discard(self) -> None:
        """Close and delete the file (a resume that failed leaves nothing behind)."""
        self.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class Recording:
    path: Path
    header: dict
    records: list[dict] = field(default_factory=list)
    truncated: bool = False
    lines: list[int] = field(default_factory=list)  # the file line of each record

    def line_of(self, record: dict) -> int | None:
        for r, n in zip(self.records, self.lines):
            if r is record:
                return n
        return None

    @property
    def actions(self) -> list[dict]:
        return [r for r in self.records if r.get("type") == "action"]

    @property
    def events(self) -> list[dict]:
        """Event records as ``Event.to_dict()`` gives them (without the ``type`` key)."""
        return [{k: v for k, v in r.items() if k != "type"} for r in self.records if r.get("type") == "event"]

    @property
    def poses(self) -> list[dict]:
        return [r for r in self.records if r.get("type") == "pose"]


def read_recording(path) -> Recording:
    from ..safefile import SafeFileError, loads_json, read_text

    path = Path(path)
    try:
        text = read_text(path, MAX_RECORDING_BYTES)
    except SafeFileError as e:
        raise RecordingError(str(e)) from None
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines = lines[:-1]
    if not lines or not lines[0].strip():
        raise RecordingError(f"{path}: line 1: empty file, expected an imssim recording header")
    out: list[dict] = []
    numbers: list[int] = []
    truncated = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = loads_json(line, path, MAX_RECORD_DEPTH)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines) - 1 and i > 0:
                truncated = True  # the session ended mid-write: drop the partial record
                break
            why = e.message if isinstance(e, SafeFileError) else str(e)
            raise RecordingError(f"{path}: line {i + 1}: not a JSON record ({why})") from None
        out.append(rec)
        numbers.append(i + 1)
    header = out[0]
    if header.get("format") != FORMAT:
        raise RecordingError(f"{path}: line 1: field format: expected {FORMAT!r}, got {header.get('format')!r}")
    if header.get("version") != VERSION:
        raise RecordingError(f"{path}: line 1: field version: expected {VERSION}, got {header.get('version')!r}")
    seed = header.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecordingError(f"{path}: line 1: field seed: expected a whole number, got {seed!r}")
    rec = Recording(path, header, out[1:], truncated)
    rec.lines = numbers[1:]
    return rec


def is_recording(path) -> bool:
    """Whether a file starts like an imssim recording (used to tell recordings from placements)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline(4096)
        return FORMAT in first and first.lstrip().startswith("{")
    except (OSError, UnicodeDecodeError):
        return False


def recordings_dir() -> Path:
    """Where the window's session recordings are written (IMSSIM_RECORDINGS_DIR, else the
    user data folder's ``sessions``); created when missing."""
    env = os.environ.get("IMSSIM_RECORDINGS_DIR")
    if env:
        p = Path(env)
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir("imssim", appauthor=False)) / "sessions"
    p.mkdir(parents=True, exist_ok=True)
    return p


def new_recording_path(case_id: str, seed: int, suffix: str = "") -> Path:
    """A recording file that does not exist yet: ``<case>-<date>-<time>-<seed><suffix>[-k].jsonl``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{case_id}-{stamp}-{int(seed)}{suffix}"
    path = recordings_dir() / f"{base}.jsonl"
    k = 1
    while path.exists():
        k += 1
        path = recordings_dir() / f"{base}-{k}.jsonl"
    return path
