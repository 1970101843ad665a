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


@dataclass(frozen=True)
class TraineeChanged:
    """Who the progress store saves the finished attempts for (None: nobody said yet)."""

    name: str | None


@dataclass(frozen=True)
class ProgressSaved:
    """A finished attempt is in the progress store (or several were, when a database came back)."""

    trainee: str
    db: str  # the database, its password masked
    count: int = 1
    case: str | None = None
    course_session: int | None = None  # the course session the attempt was (None: not a course)
    next_session: int | None = None


@dataclass(frozen=True)
class ProgressNotSaved:
    """A finished attempt could not go to the progress store; ``kept`` says where it waits
    (a pending file, saved when the database can be reached; or this window, until a name is given)."""

    text: str
    db: str | None
    kept: str | None


@dataclass(frozen=True)
class CourseContinued:
    """The next session of a course is open: the patient as the earlier sessions left them."""

    case: str
    session: int
    sessions: int
    lines: tuple  # what the brief says changed (findings, changes since last time, the muscles)
    offline: bool = False  # the state came from this window (the database could not be reached)


@dataclass(frozen=True)
class AuthoringChanged:
    """The case being authored changed (an edit, undo/redo, a save, another case); the
    view reads the desk (:class:`imssim.app.authoring.AuthorDesk`) again."""

    dirty: bool
    what: str = ""  # what the last edit did ("place a tender point in the ..."), or ""


@dataclass(frozen=True)
class AuthorModeChanged:
    on: bool  # the window is (True) or is no longer (False) in Author mode
