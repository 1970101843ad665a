"""Scoring: metric plug-ins, the weighted report, headless grading (docs/scoring.md)."""

from .base import FAMILIES, REGISTRY, Context, Metric, MetricResult, PoseSample, create_all, register
from . import metrics as _metrics  # noqa: F401  (registers the built-in metrics)
from .metrics import describe_needle, level_error_of
from .report import Report, Scorer

__all__ = ["FAMILIES", "REGISTRY", "Context", "Metric", "MetricResult", "PoseSample", "Report", "Scorer",
           "create_all", "describe_needle", "level_error_of", "register"]
