"""One finished session as the progress store keeps it (plain data, no database here)."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

MODES = ("practice", "quiz", "exam")


@dataclass
class SessionRecord:
    trainee: str
    case_id: str
    mode: str
    total: float
    passed: bool
    safety_failed: bool
    families: dict
    breakdown: dict
    events: dict
    mistakes: list
    needles: list  # [{number, structure, target, level_error, sentence}]
    level_error: float | None = None
    min_clearance_mm: float | None = None
    course_session: int | None = None
    patient: dict | None = None
    duration_s: float | None = None
    recording_path: str | None = None
    recording_sha256: str | None = None
    finished_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    imssim_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SessionRecord":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def mistakes_of(report) -> list[str]:
    """Tags for what went wrong in a session (counted across a class)."""
    out = []
    if report.safety_failed:
        out.append("entered a danger structure")
    for o in report.objectives:
        if not o["met"]:
            out.append(f"missed the {o['name']} objective")
    try:
        le = report.metric("level_error")
        if any((d.get("level_error") or 0) > 0 for d in le.details):
            out.append("paraspinal needle at the wrong level")
    except KeyError:
        pass
    if any(n.get("structure") and not n.get("target") for n in report.needles):
        out.append("needle off target")
    try:
        cov = report.metric("coverage").details[0]
        if cov.get("symptom_site_only_share", 0) > 0:
            out.append("treated the symptom site only")
    except (KeyError, IndexError):
        pass
    try:
        if report.metric("needle_zones").value:
            out.append("needle too long for its zone")
    except KeyError:
        pass
    if report.segment_call and not report.segment_call.get("right"):
        out.append("wrong segment call")
    return out


def record_from_report(report, trainee: str, mode: str = "practice", *, events=(), course_session=None,
                       patient=None, duration_s=None, recording_path=None) -> SessionRecord:
    """A :class:`SessionRecord` from a finished session's :class:`~imssim.core.training.scoring.Report`."""
    from .... import __version__

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    breakdown = {m.name: {"value": _num(m.value) if not isinstance(m.value, int) else m.value,
                          "score": _num(m.score), "family": m.family, "sentence": m.sentence}
                 for m in report.metrics}
    try:
        le = report.metric("level_error").value
    except KeyError:
        le = None
    try:
        mc = report.metric("min_clearance").value
    except KeyError:
        mc = None
    needles = []
    for k, n in enumerate(report.needles):
        needles.append({"number": int(n.get("needle", k + 1)), "structure": n.get("structure"),
                        "target": bool(n.get("target")), "level_error": n.get("level_error"),
                        "sentence": str(n.get("sentence", ""))})
    ev = Counter(getattr(e, "kind", None) or e.get("kind") for e in events)
    sha = None
    if recording_path is not None and Path(recording_path).is_file():
        sha = file_sha256(recording_path)
    if duration_s is None:
        try:
            duration_s = report.metric("technique").details[0].get("total_time_s")
        except (KeyError, IndexError):
            pass
    return SessionRecord(
        trainee=str(trainee), case_id=str(report.scenario or "-"), mode=mode, total=round(float(report.total), 3),
        passed=bool(report.passed), safety_failed=bool(report.safety_failed),
        families={k: _num(v) for k, v in report.families.items()}, breakdown=breakdown, events=dict(ev),
        mistakes=mistakes_of(report), needles=needles, level_error=_num(le), min_clearance_mm=_num(mc),
        course_session=course_session, patient=patient, duration_s=_num(duration_s),
        recording_path=str(recording_path) if recording_path else None, recording_sha256=sha,
        imssim_version=__version__)
