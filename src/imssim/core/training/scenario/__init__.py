"""Scenarios: the patient cases instructors write (YAML), validated and resolved.

Public API (names are stable; see docs/scenarios.md):

* models: :class:`Scenario`, :class:`Patient`, :class:`PainArea`, :class:`Finding`,
  :class:`Diagnosis`, :class:`SupersensitiveMuscle`, :class:`TriggerLocus`,
  :class:`Physiology`, :class:`Target`, :class:`Targets`, :class:`Safety`,
  :class:`Needles`, :class:`NeedleZone`, :class:`Modes`, :class:`ModeSettings`,
  :class:`MultipleChoice`, :class:`PickStructure`, :data:`QuizItem`,
  :class:`Scoring`, :class:`ScoringWeights`, :class:`Objectives`, :class:`Course`
  (:class:`CourseUntreated`, :class:`CourseRelapse`);
* :func:`load_scenario` (path, atlas=None) -> Scenario, raising :class:`ScenarioError`;
* :func:`validate_file` (path, atlas=None) -> list of :class:`ScenarioIssue`;
* :func:`derive_targets` (scenario, atlas) -> list of :class:`ResolvedTarget`;
* :func:`resolve_locus` (locus, atlas, structure=None) -> xyz (mm);
* :func:`default_scenario_path`, :func:`find_scenario`, :func:`library`;
* :func:`save_scenario` (an edited scenario: only its changes, comments and order kept; NAME.bak), :func:`scenario_json_schema`.
"""

from __future__ import annotations

from .errors import ScenarioError, ScenarioIssue
from .loader import MAX_SCENARIO_BYTES, dump_document, load_document_and_scenario, save_document
from .model import (
    SCENARIO_VERSION,
    Course,
    CourseRelapse,
    CourseUntreated,
    Objectives,
    Diagnosis,
    Finding,
    Modes,
    ModeSettings,
    MultipleChoice,
    NeedleZone,
    Needles,
    PainArea,
    Patient,
    Physiology,
    PickStructure,
    QuizItem,
    Safety,
    Scenario,
    Scoring,
    ScoringWeights,
    SupersensitiveMuscle,
    Target,
    Targets,
    TriggerLocus,
)
from .targets import ResolvedTarget, derive_targets, resolve_locus

from .files import (
    DEFAULT_SCENARIO_ID,
    bind_scenario,
    default_scenario_path,
    find_scenario,
    library,
    library_dir,
    load_scenario,
    save_scenario,
    scenario_json_schema,
    validate_file,
)

__all__ = [
    "SCENARIO_VERSION",
    "DEFAULT_SCENARIO_ID",
    "MAX_SCENARIO_BYTES",
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
    "ScenarioError",
    "ScenarioIssue",
    "ResolvedTarget",
    "load_scenario",
    "bind_scenario",
    "validate_file",
    "derive_targets",
    "resolve_locus",
    "default_scenario_path",
    "find_scenario",
    "library",
    "library_dir",
    "save_scenario",
    "dump_document",
    "scenario_json_schema",
]
