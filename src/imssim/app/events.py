"""What the application tells its views: one small dataclass per kind of change.

A view keeps a table ``{EventType: handler}`` and dispatches on ``type(event)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Feedback:
    text: str
    level: str = "info"  # info, warn, danger, good


@dataclass(frozen=True)
class NeedleChanged:
    readout: dict | None  # the selected needle's readout (None: no needle)


@dataclass(frozen=True)
class Hover:
    text: str | None


@dataclass(frozen=True)
class ModeChanged:
    mode: str


@dataclass(frozen=True)
class ToolChanged:
    tool: str


@dataclass(frozen=True)
class NeedleSpecChanged:
    length: float


@dataclass(frozen=True)
class ViewChanged:
    view: str


@dataclass(frozen=True)
class Selected:
    sid: str | None


@dataclass(frozen=True)
class Clicked:
    sid: str | None


@dataclass(frozen=True)
class Danger:
    structure: str
    harm: str
    depth: float
    text: str


@dataclass(frozen=True)
class CaseOpened:
    scenario: object


@dataclass(frozen=True)
class AttemptStarted:
    """A fresh attempt (new case, new attempt, resumed session): views start clean."""

    mode: str
    resumed: bool = False


@dataclass(frozen=True)
class SegmentsChanged:
    segments: tuple


@dataclass(frozen=True)
class QuizChanged:
    index: int  # the question shown or answered


@dataclass(frozen=True)
class Palpated:
    found: tuple
    point: np.ndarray


@dataclass(frozen=True)
class Twitch:
    structure: str | None
    needle: int | None
    amplitude: float
    duration: float
    text: str


@dataclass(frozen=True)
class Release:
    structure: str | None
    needle: int | None
    text: str
    delay: float


@dataclass(frozen=True)
class Finished:
    report: object
    ended_by: str | None = None
