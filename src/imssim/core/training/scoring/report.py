"""The weighted total: metric families, the scenario's weights and pass mark, safety."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import FAMILIES, Context, MetricResult, create_all

REPORT_VERSION = 1


@dataclass
class Report:
    scenario: str | None
    metrics: list[MetricResult]
    families: dict[str, float | None]
    weights: dict[str, float]
    total: float  # percent
    pass_mark: float
    passed: bool
    safety_failed: bool
    quiz: dict | None = None
    summary: str = ""
    needles: list[dict] = field(default_factory=list)
    segment_call: dict | None = None  # the trainee's marked segments vs the case's (not weighted)
    objectives: list[dict] = field(default_factory=list)  # the case's coverage objectives: {name, met, sentence}
    muscles: dict = field(default_factory=dict)  # supersensitive muscle -> {start, end, twitches} (set by Session)

    @property
    def objectives_met(self) -> bool:
        return all(o["met"] for o in self.objectives)

    def metric(self, name: str) -> MetricResult:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"version": REPORT_VERSION, "scenario": self.scenario, "total": round(self.total, 2),
                "pass_mark": self.pass_mark, "passed": self.passed, "safety_failed": self.safety_failed,
                "summary": self.summary,
                "families": {k: None if v is None else round(v, 4) for k, v in self.families.items()},
                "weights": self.weights, "quiz": self.quiz, "needles": self.needles,
                "segment_call": self.segment_call, "objectives": self.objectives,
                "muscles": self.muscles,
                "metrics": [m.to_dict() for m in self.metrics]}

    def format_text(self) -> str:
        lines = [self.summary, ""]
        for d in self.needles:
            lines.append("  " + d["sentence"])
        for o in self.objectives:
            lines.append(f"  objective {'met' if o['met'] else 'NOT met'}: {o['sentence']}")
        lines.append("")
        for fam in FAMILIES:
            v = self.families.get(fam)
            w = self.weights.get(fam, 0.0)
            lines.append(f"  {fam:15s} {'-' if v is None else f'{100 * v:5.1f}%':>7s}  (weight {w:.2f})")
        lines.append("")
        for m in self.metrics:
            v = "-" if m.value is None else (f"{m.value:.1f}" if isinstance(m.value, float) else str(m.value))
            lines.append(f"  {m.name:16s} {v:>8s} {m.unit:10s} {m.sentence}")
        if self.quiz:
            lines.append(f"  quiz: {self.quiz['correct']} of {self.quiz['items']} right")
        if self.segment_call:
            lines.append("  " + self.segment_call["sentence"])
        return "\n".join(lines)


class Scorer:
    """Runs every registered metric over a stream of samples and events."""

    def __init__(self, context: Context, metric_names=None):
        self.ctx = context
        self.metrics = create_all(metric_names)
        for m in self.metrics:
            m.start(context)

    def add_sample(self, s) -> None:
        for m in self.metrics:
            m.add_sample(s)

    def add_event(self, e) -> None:
        for m in self.metrics:
            m.add_event(e)

    def finish(self, quiz: dict | None = None) -> Report:
        for m in self.metrics:
            m.finish()
        results = [m.result() for m in self.metrics]
        sc = self.ctx.scenario
        if sc is not None:
            w = sc.scoring.weights
            weights = {f: float(getattr(w, f)) for f in FAMILIES}
            pass_mark = float(sc.scoring.pass_mark)
            breach_fails = sc.safety.breach_fails
            quiz_weight = float(sc.scoring.quiz_weight)
        else:
            weights = {f: 1.0 for f in FAMILIES}
            pass_mark, breach_fails, quiz_weight = 70.0, True, 0.0
        fam: dict[str, list[float]] = {f: [] for f in FAMILIES}
        for r in results:
            if r.family in fam and r.score is not None:
                fam[r.family].append(r.score)
        families = {f: (sum(v) / len(v) if v else None) for f, v in fam.items()}
        used = {f: weights[f] for f in FAMILIES if families[f] is not None}
        wsum = sum(used.values())
        needle_total = 100.0 * sum(families[f] * w for f, w in used.items()) / wsum if wsum > 0 else 0.0
        total = needle_total
        if quiz and quiz.get("items"):
            total = (1 - quiz_weight) * needle_total + quiz_weight * 100.0 * quiz["correct"] / quiz["items"]
        breaches = next((m for m in self.metrics if m.name == "breaches"), None)
        safety_failed = bool(breach_fails and breaches is not None and breaches.failing)
        objectives = check_objectives(sc, next((r for r in results if r.name == "coverage"), None))
        missed = [o for o in objectives if not o["met"]]
        passed = total >= pass_mark and not safety_failed and not missed
        loc = next((r for r in results if r.name == "on_target"), None)
        needles = loc.details if loc else []
        if safety_failed:
            b = breaches.failing[0]
            summary = (f"FAIL (safety): needle {b['needle']} entered the "
                       f"{self.ctx.atlas.structures[b['structure']].name} ({b['harm']}). "
                       f"Score {total:.0f}% would otherwise {'pass' if total >= pass_mark else 'fail'} "
                       f"(pass mark {pass_mark:.0f}%).")
        elif missed and total >= pass_mark:
            summary = (f"FAIL (objectives): {total:.0f}% reaches the pass mark ({pass_mark:.0f}%) but the session "
                       f"missed what the case asks for: {' '.join(o['sentence'] for o in missed)}")
        else:
            summary = f"{'PASS' if passed else 'FAIL'}: {total:.0f}% (pass mark {pass_mark:.0f}%)."
        return Report(sc.id if sc is not None else None, results, families, weights, total, pass_mark, passed,
                      safety_failed, quiz, summary, needles, objectives=objectives)


def check_objectives(scenario, coverage) -> list[dict]:
    """The case's coverage objectives (``scoring.objectives``) against the coverage metric's
    details: each ``{"name", "met", "sentence"}``. An objective applies only when the case
    has targets of its kind."""
    if scenario is None or coverage is None or not coverage.details:
        return []
    ob = getattr(scenario.scoring, "objectives", None)
    if ob is None or scenario.scoring.quiz_weight >= 1.0:  # a pure quiz: nothing to needle
        return []
    d = coverage.details[0]
    out = []
    groups = d.get("paraspinal_groups", 0)
    if ob.paraspinal and groups:
        miss = d.get("paraspinal_groups_missed", [])
        where = ", ".join(f"{'-'.join(m['segments'])} {m['side']}" for m in miss)
        out.append({"name": "paraspinal", "met": not miss,
                    "sentence": (f"paraspinal muscles needled at every affected segment ({groups})." if not miss else
                                 f"paraspinal muscles not needled at {where}.")})
    n_peri = d.get("peripheral_targets", 0)
    if ob.peripheral_min and n_peri:
        need = min(ob.peripheral_min, n_peri)
        got = len(d.get("peripheral_reached", []))
        out.append({"name": "peripheral", "met": got >= need,
                    "sentence": f"peripheral myotome: {got} of the {need} muscle(s) the case asks for needled."})
    return out
