"""The scenario schema: the patient case an instructor writes, as pydantic v2 models.

Every model forbids unknown fields (a typo such as ``supersensitivty`` is an error with a
"did you mean"), and every number has its range. Structure and landmark names are plain
strings here: they are checked against an atlas by :mod:`imssim.core.training.scenario.validate`,
so a scenario can be checked without any atlas too (schema only).

The names of the public classes below are stable; other parts of imssim (scoring,
physiology, the window) code against them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    BeforeValidator,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ...model.atlas import SEGMENTS

#: The scenario format version this imssim reads and writes.
SCENARIO_VERSION = 1

Side = Literal["left", "right"]
DiagnosisSide = Literal["left", "right", "bilateral"]
PainSide = Literal["left", "right", "bilateral", "midline"]
Mode = Literal["practice", "quiz", "exam"]
Habitus = Literal["lean", "average", "obese"]
Sex = Literal["female", "male", "other"]
Difficulty = Literal["beginner", "intermediate", "advanced"]
Metric = Literal["targeting", "level_accuracy", "coverage", "safety", "technique"]
End = Literal["superior", "inferior", "medial", "lateral", "anterior", "posterior"]

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SEG_RE = re.compile(r"^(C[1-8]|T([1-9]|1[0-2])|L[1-5]|S[1-5])$")


def _segment(v: Any) -> str:
    if not isinstance(v, str):
        raise PydanticCustomError("segment", "expected a spinal segment such as 'L5' (C1-C8, T1-T12, L1-L5, S1-S5)")
    s = v.strip().upper()
    if not _SEG_RE.match(s):
        raise PydanticCustomError(
            "segment", f"{v!r} is not a spinal segment; expected one of C1-C8, T1-T12, L1-L5, S1-S5".replace("{", "(").replace("}", ")")
        )
    return s


Segment = Annotated[str, BeforeValidator(_segment), Field(json_schema_extra={"enum": list(SEGMENTS)})]


class _Model(BaseModel):
    """Base: unknown keys are errors (the loader adds a "did you mean")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_default=True)


Text = Annotated[str, Field(min_length=1, max_length=4000)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


# ----------------------------------------------------------------------------- positions
class TriggerLocus(_Model):
    """A position on a structure: by landmark (+ offset), by fraction along the muscle, or by coordinates.

    Exactly one of ``landmark``, ``fraction`` or ``xyz`` is given. Coordinates and offsets
    are in millimetres in the patient frame (LPS: +X patient's left, +Y posterior, +Z up).
    """

    landmark: str | None = Field(None, description="landmark id or name, e.g. 'iliac_crest_r'")
    offset_mm: tuple[float, float, float] = Field((0.0, 0.0, 0.0), description="added to the landmark (LPS, mm)")
    fraction: Fraction | None = Field(None, description="0..1 along the muscle's long (principal) axis")
    from_end: End = Field("superior", description="which end of the muscle fraction 0 is at")
    xyz: tuple[float, float, float] | None = Field(None, description="absolute position (LPS, mm)")
    radius_mm: float = Field(10.0, gt=0.0, le=100.0, description="how far from the locus a needle tip can fire it")
    snap: bool = Field(True, description="move the point into the muscle if it falls outside it")
    label: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _one_way(self) -> "TriggerLocus":
        given = [k for k in ("landmark", "fraction", "xyz") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "locus", "give exactly one of 'landmark', 'fraction' or 'xyz' (got {got})",
                {"got": ", ".join(given) or "none"},
            )
        if any(abs(c) > 3000 for c in (self.xyz or ()) + tuple(self.offset_mm)):
            raise PydanticCustomError("locus", "coordinates are in millimetres and must lie within 3 m of the origin")
        return self

    @property
    def method(self) -> str:
        return "landmark" if self.landmark is not None else "fraction" if self.fraction is not None else "xyz"


# ----------------------------------------------------------------------------- patient
class PainArea(_Model):
    """Where it hurts."""

    region: ShortText = Field(description="e.g. 'low back', 'lateral leg', 'dorsum of foot'")
    side: PainSide = "midline"
    structure: str | None = Field(None, description="optional structure the pain is felt over")
    description: str | None = Field(None, max_length=1000)


class Finding(_Model):
    """An examination finding pointing at a structure (and optionally a position on it)."""

    kind: Literal["tender_point", "taut_band", "restricted_movement", "positive_sign", "other"]
    description: Text
    structure: str | None = None
    locus: TriggerLocus | None = None

    @model_validator(mode="after")
    def _fraction_needs_structure(self) -> "Finding":
        if self.locus is not None and self.locus.fraction is not None and self.structure is None:
            raise PydanticCustomError("finding", "a locus given by 'fraction' needs the finding's 'structure'")
        return self


class Patient(_Model):
    age: int = Field(ge=12, le=110)
    sex: Sex
    habitus: Habitus = "average"
    history: Text
    presenting_complaint: Text
    pain: list[PainArea] = Field(default_factory=list, description="where it hurts")
    findings: list[Finding] = Field(default_factory=list, description="examination findings")
    images: list[str] = Field(default_factory=list, description="image files beside the scenario")


class Diagnosis(_Model):
    condition: ShortText = Field(description="e.g. 'chronic low back pain', 'tension headache'")
    segments: list[Segment] = Field(min_length=1, max_length=30, description="affected spinal segments")
    side: DiagnosisSide
    notes: str | None = Field(None, max_length=4000)

    @field_validator("segments", mode="before")
    @classmethod
    def _segs(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return v

    @field_validator("segments")
    @classmethod
    def _no_dups(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise PydanticCustomError("segment", "a segment is listed twice")
        return v

    @property
    def sides(self) -> tuple[str, ...]:
        return ("left", "right") if self.side == "bilateral" else (self.side,)


# ----------------------------------------------------------------------------- physiology
class SupersensitiveMuscle(_Model):
    """A muscle the twitch model treats as supersensitive (shortened, taut, tender)."""

    structure: str = Field(min_length=1, description="muscle id or name, e.g. 'gluteus_medius_r'")
    supersensitivity: Fraction = Field(0.7, description="0 = normal muscle, 1 = maximal")
    trigger_loci: list[TriggerLocus] = Field(default_factory=list, max_length=50)
    twitch_probability_scale: float | None = Field(None, ge=0.0, le=5.0, description="overrides physiology default")


class Physiology(_Model):
    """Twitch-model parameters (the literature does not fix them: scenario-tunable)."""

    baseline_supersensitivity: Fraction = Field(0.0, description="for muscles not listed")
    twitch_probability_scale: float = Field(1.0, ge=0.0, le=5.0)
    habituation_factor: Fraction = Field(0.7, description="each twitch is this fraction of the previous one")
    release_rate: Fraction = Field(0.3, description="fraction of supersensitivity released per twitch")
    default_locus_radius_mm: float = Field(10.0, gt=0.0, le=100.0)


# ----------------------------------------------------------------------------- targets
class Target(_Model):
    """A target the author adds (or re-weights) on top of the segmental rule."""

    structure: str = Field(min_length=1)
    kind: Literal["paraspinal", "peripheral"] | None = Field(None, description="default: from the structure")
    weight: float = Field(1.0, gt=0.0, le=10.0)
    level_tolerance: int | None = Field(None, ge=0, le=5)
    depth_mm: tuple[float, float] | None = Field(None, description="[min, max] depth below the skin, mm")

    @field_validator("depth_mm")
    @classmethod
    def _depth(cls, v):
        if v is not None and not (0 <= v[0] < v[1] <= 200):
            raise PydanticCustomError("depth", "depth_mm must be [min, max] with 0 <= min < max <= 200")
        return v


class Targets(_Model):
    """How the targets are found: the segmental rule plus the author's changes."""

    derive: bool = Field(True, description="apply the segmental rule (multifidus at the level + myotome)")
    paraspinal: bool = True
    peripheral: bool = True
    level_tolerance: int = Field(1, ge=0, le=5, description="levels either side still counted as on target")
    paraspinal_weight: float = Field(2.0, gt=0.0, le=10.0, description="multifidus at the level: the core IMS target")
    peripheral_weight: float = Field(1.0, gt=0.0, le=10.0)
    dominant_root_factor: float = Field(1.5, ge=1.0, le=10.0, description="weight factor for the root's dominant muscles")
    uncertain_factor: float = Field(0.5, gt=0.0, le=1.0, description="weight factor for weakly sourced supply")
    add: list[Target] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list, description="structures to drop from the derived set")


# ----------------------------------------------------------------------------- safety
class Needles(_Model):
    lengths_mm: list[Annotated[float, Field(gt=0, le=150)]] = Field(default_factory=lambda: [25.0, 40.0, 50.0, 60.0], min_length=1)
    gauges_mm: list[Annotated[float, Field(ge=0.1, le=0.5)]] = Field(default_factory=lambda: [0.25, 0.30], min_length=1)


class NeedleZone(_Model):
    """A region where only shorter needles are allowed (e.g. 19 mm over the rhomboids)."""

    landmark: str
    radius_mm: float = Field(gt=0, le=500)
    max_length_mm: float = Field(gt=0, le=150)
    reason: str | None = Field(None, max_length=1000)


class Safety(_Model):
    watch: list[str] | None = Field(
        None, description="danger structures watched; 'all' or leave out: every structure with a harm"
    )
    needles: Needles = Field(default_factory=Needles)
    zones: list[NeedleZone] = Field(default_factory=list)
    max_needles: int = Field(10, ge=1, le=100)
    time_limit_s: float | None = Field(None, gt=0, le=24 * 3600)
    breach_fails: bool = Field(True, description="entering a watched danger structure fails the attempt")

    @field_validator("watch", mode="before")
    @classmethod
    def _all(cls, v):
        return None if v == "all" else v

    @property
    def watch_all(self) -> bool:
        return self.watch is None


# ----------------------------------------------------------------------------- modes
class ModeSettings(_Model):
    labels: bool = True
    hints: bool = True
    targets_shown: bool = True
    timer_s: float | None = Field(None, gt=0, le=24 * 3600)


def _mode_defaults() -> dict[str, ModeSettings]:
    return {
        "practice": ModeSettings(labels=True, hints=True, targets_shown=True),
        "quiz": ModeSettings(labels=False, hints=False, targets_shown=False),
        "exam": ModeSettings(labels=False, hints=False, targets_shown=False, timer_s=900),
    }


class Modes(_Model):
    default: Mode = "practice"
    practice: ModeSettings = Field(default_factory=lambda: _mode_defaults()["practice"])
    quiz: ModeSettings = Field(default_factory=lambda: _mode_defaults()["quiz"])
    exam: ModeSettings = Field(default_factory=lambda: _mode_defaults()["exam"])

    def settings(self, mode: str | None = None) -> ModeSettings:
        return getattr(self, mode or self.default)


# ----------------------------------------------------------------------------- quiz
class MultipleChoice(_Model):
    type: Literal["multiple_choice"]
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    question: Text
    choices: list[ShortText] = Field(min_length=2, max_length=12)
    answer: list[int] = Field(description="index (from 0) of the right choice, or a list of them")
    explanation: Text
    image: str | None = None

    @field_validator("answer", mode="before")
    @classmethod
    def _one_answer(cls, v):
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _answer_in_range(self) -> "MultipleChoice":
        ans = self.answers
        if not ans:
            raise PydanticCustomError("answer", "give at least one answer index")
        bad = [a for a in ans if not 0 <= a < len(self.choices)]
        if bad:
            raise PydanticCustomError(
                "answer", "answer index {bad} is out of range: choices are numbered 0 to {last}",
                {"bad": bad[0], "last": len(self.choices) - 1},
            )
        if len(set(ans)) != len(ans):
            raise PydanticCustomError("answer", "an answer index is listed twice")
        return self

    @property
    def answers(self) -> list[int]:
        return list(self.answer)


class PickStructure(_Model):
    type: Literal["pick_structure"]
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    question: Text
    answer: list[str] = Field(min_length=1, description="structure ids or names that count as right")
    explanation: Text
    image: str | None = None

    @field_validator("answer", mode="before")
    @classmethod
    def _one(cls, v):
        return [v] if isinstance(v, str) else v


QuizItem = Annotated[Union[MultipleChoice, PickStructure], Field(discriminator="type")]


# ----------------------------------------------------------------------------- scoring
class ScoringWeights(_Model):
    targeting: float = Field(0.30, ge=0)
    level_accuracy: float = Field(0.20, ge=0)
    coverage: float = Field(0.20, ge=0)
    safety: float = Field(0.20, ge=0)
    technique: float = Field(0.10, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> "ScoringWeights":
        if self.total <= 0:
            raise PydanticCustomError("weights", "at least one scoring weight must be above 0")
        return self

    @property
    def total(self) -> float:
        return self.targeting + self.level_accuracy + self.coverage + self.safety + self.technique

    def normalised(self) -> dict[str, float]:
        t = self.total
        return {k: getattr(self, k) / t for k in ScoringWeights.model_fields}


class Objectives(_Model):
    """What a passing session must cover besides the pass mark (IMS treats the segment:
    the paraspinal muscles at the level AND the peripheral muscles of its myotome).

    Each objective applies only when the case has targets of that kind."""

    paraspinal: bool = Field(True, description="needle a paraspinal target at every affected segment and side")
    peripheral_min: int = Field(1, ge=0, le=20, description="needle at least this many peripheral myotome targets "
                                                             "(0: not required)")


class Scoring(_Model):
    weights: ScoringWeights = Field(default_factory=ScoringWeights)
    objectives: Objectives = Field(default_factory=Objectives)
    pass_mark: float = Field(70.0, ge=0, le=100, description="percent")
    quiz_weight: float = Field(0.0, ge=0, le=1, description="share of the final score from the quiz items")


# ----------------------------------------------------------------------------- course
class CourseUntreated(_Model):
    """What a session without segmental treatment does to the patient."""

    change_per_session: float = Field(0.02, ge=-0.5, le=0.5, description="added to each supersensitive muscle's "
                                      "supersensitivity (positive: the patient gets worse, negative: natural recovery)")


class CourseRelapse(_Model):
    """A flare after improvement when the segment goes untreated."""

    after_missed_sessions: int = Field(2, ge=1, le=30, description="consecutive sessions without segmental treatment")
    rise: Fraction = Field(0.15, description="rise of each muscle's supersensitivity, as a share of its initial value")


class Course(_Model):
    """The case run as a course of sessions (docs/progress.md): supersensitivity and
    shortening carry over between sessions and fall when the segment is treated well."""

    sessions: int = Field(8, ge=2, le=30, description="sessions in the course")
    expected_sessions: int = Field(6, ge=1, le=30, description="well-treated sessions that usually resolve the patient")
    resolved_below: Fraction = Field(0.2, description="a muscle counts as resolved below this supersensitivity")
    carry_over: Fraction = Field(0.8, description="share of a session's release (twitches) that holds until the next "
                                                  "session when the segment was treated")
    off_segment_carry_over: Fraction = Field(0.1, description="the same when the segment was not treated "
                                                              "(local needling only: it comes back)")
    initial_pain: int = Field(7, ge=0, le=10, description="pain score (0-10) at the first session")
    initial_rom_percent: float = Field(60.0, ge=0, le=100, description="range of motion at the first session, "
                                                                       "percent of normal")
    untreated: CourseUntreated = Field(default_factory=CourseUntreated)
    relapse: CourseRelapse | None = Field(None, description="leave out: no relapse")

    @model_validator(mode="after")
    def _expected_fits(self) -> "Course":
        if self.expected_sessions > self.sessions:
            raise PydanticCustomError("course", "expected_sessions ({e}) is more than the course's sessions ({n})",
                                      {"e": self.expected_sessions, "n": self.sessions})
        return self


# ----------------------------------------------------------------------------- scenario
class Scenario(_Model):
    """One patient case (the unit of teaching)."""

    version: Literal[1] = Field(description="scenario format version (1)")
    id: str = Field(min_length=1, max_length=80, description="lowercase-with-dashes, normally the file name")
    title: ShortText
    author: ShortText
    licence: ShortText = "CC-BY-4.0"
    difficulty: Difficulty = "intermediate"
    estimated_minutes: int = Field(20, ge=1, le=600)
    learning_objectives: list[Text] = Field(default_factory=list, max_length=30)
    references: list[Text] = Field(default_factory=list, description="sources of the clinical content")
    patient: Patient
    diagnosis: Diagnosis
    supersensitive_muscles: list[SupersensitiveMuscle] = Field(default_factory=list, max_length=100)
    physiology: Physiology = Field(default_factory=Physiology)
    targets: Targets = Field(default_factory=Targets)
    safety: Safety = Field(default_factory=Safety)
    modes: Modes = Field(default_factory=Modes)
    quiz: list[QuizItem] = Field(default_factory=list, max_length=100)
    scoring: Scoring = Field(default_factory=Scoring)
    course: Course | None = Field(None, description="run the case as a course of sessions (leave out: single session)")

    _path: Any = PrivateAttr(None)
    _document: Any = PrivateAttr(None)
    _warnings: Any = PrivateAttr(default_factory=list)
    _baseline: Any = PrivateAttr(None)  # plain data as loaded: what save compares against

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v):
        if isinstance(v, int) and not isinstance(v, bool) and v > SCENARIO_VERSION:
            raise PydanticCustomError(
                "version", "scenario version {v} is newer than this imssim reads ({max}); update imssim",
                {"v": v, "max": SCENARIO_VERSION},
            )
        if v != SCENARIO_VERSION or isinstance(v, bool):
            raise PydanticCustomError("version", "expected version: 1")
        return v

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise PydanticCustomError("id", "id must be lowercase letters, digits and dashes, e.g. 'l5-low-back'")
        return v

    @model_validator(mode="after")
    def _cross(self) -> "Scenario":
        ids = [q.id for q in self.quiz if q.id]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise PydanticCustomError("quiz", "quiz item id '{id}' is used twice", {"id": dup[0]})
        if self.modes.default == "quiz" and not self.quiz:
            raise PydanticCustomError("modes", "modes.default is 'quiz' but the scenario has no quiz items")
        return self

    # -- convenience --------------------------------------------------------
    @property
    def path(self):
        """The file this scenario was loaded from (or None)."""
        return self._path

    @property
    def document(self):
        """The ruamel round-trip document it was loaded from (keeps comments and order)."""
        return self._document

    @property
    def warnings(self) -> list:
        """Atlas-check warnings found when it was loaded (ScenarioIssue list)."""
        return list(self._warnings or [])

    def supersensitivity_of(self, structure_id: str) -> float:
        for m in self.supersensitive_muscles:
            if m.structure == structure_id:
                return m.supersensitivity
        return self.physiology.baseline_supersensitivity


__all__ = [
    "SCENARIO_VERSION",
    "Scenario",
    "Patient",
    "PainArea",
    "Finding",
    "Diagnosis",
    "SupersensitiveMuscle",
    "TriggerLocus",
    "Physiology",
    "Target",
    "Targets",
    "Needles",
    "NeedleZone",
    "Safety",
    "ModeSettings",
    "Modes",
    "MultipleChoice",
    "PickStructure",
    "QuizItem",
    "ScoringWeights",
    "Scoring",
    "Objectives",
    "Course",
    "CourseUntreated",
    "CourseRelapse",
]
