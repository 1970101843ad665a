"""Session recordings: JSON lines, one header line then one record per line (docs/recording.md).

Each record is flushed to the operating system as it is written, so a crash loses at most
the record being written (well within the one-second promise). The reader tolerates a
truncated last line (it is dropped and ``Recording.truncated`` is set).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "imssim-recording"
VERSION = 1
FLUSH_INTERVAL_S = 1.0


class RecordingError(ValueError):
    """A recording that cannot be read (message names the file and line)."""


class RecordingWriter:
    """Append records to a JSON-lines file as the session goes."""

    def __init__(self, path, header: dict, fsync_interval_s: float = FLUSH_INTERVAL_S):
        self.path = Path(path)
        self._f = open(self.path, "w", encoding="utf-8")
        self._fsync_interval = fsync_interval_s
        self._last_sync = time.monotonic()
        self.write({"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **header})

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n")
        self._f.flush()  # to the OS every record: a crash of imssim loses nothing written
        now = time.monotonic()
        if now - self._last_sync >= self._fsync_interval:  # to the disk at least every second
            os.fsync(self._f.fileno())
            self._last_sync = now

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

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

    @property
    def actions(self) -> list[dict]:
        return [r for r in self.records if r.get("type") == "action"]

    @property
    def events(self) -> list[dict]:
        return [r for r in self.records if r.get("type") == "event"]

    @property
    def poses(self) -> list[dict]:
        return [r for r in self.records if r.get("type") == "pose"]


def read_recording(path) -> Recording:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{path}: cannot read: {e}") from None
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines = lines[:-1]
    if not lines or not lines[0].strip():
        raise RecordingError(f"{path}: line 1: empty file, expected an imssim recording header")
    out: list[dict] = []
    truncated = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if i == len(lines) - 1 and i > 0:
                truncated = True  # the session ended mid-write: drop the partial record
                break
            raise RecordingError(f"{path}: line {i + 1}: not a JSON record ({e})") from None
        out.append(rec)
    if not complete and not truncated and len(out) > 1:
        truncated = False  # last line complete JSON without newline: keep it
    header = out[0]
    if header.get("format") != FORMAT:
        raise RecordingError(f"{path}: line 1: field format: expected {FORMAT!r}, got {header.get('format')!r}")
    if header.get("version") != VERSION:
        raise RecordingError(f"{path}: line 1: field version: expected {VERSION}, got {header.get('version')!r}")
    return Recording(path, header, out[1:], truncated)


def is_recording(path) -> bool:
    """Whether a file starts like an imssim recording (used to tell recordings from placements)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline(4096)
        return FORMAT in first and first.lstrip().startswith("{")
    except (OSError, UnicodeDecodeError):
        return False
