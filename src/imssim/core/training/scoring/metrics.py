"""The built-in metrics (each a small plug-in; see base.py for the interface)."""

from __future__ import annotations

import math

import numpy as np

from ...model.atlas import level_distance
from .base import Metric, MetricResult, PoseSample, register


def _seg_text(segs) -> str:
    segs = list(segs)
    if not segs:
        return "no known segment"
    return segs[0] if len(segs) == 1 else f"{segs[0]}-{segs[-1]}"


class _PerNeedle(Metric):
    """Keeps each needle's final pose (the last one before removal)."""

    def start(self, context):
        super().start(context)
        self.final: dict[int, PoseSample] = {}

    def add_sample(self, s: PoseSample) -> None:
        if s.action != "remove":
            self.final[s.needle] = s

    def _name(self, sid):
        st = self.ctx.atlas.structures.get(sid)
        return st.name if st else sid


def describe_needle(ctx, s: PoseSample, twitched: bool | None = None) -> str:
    """The student-facing sentence about where one needle is."""
    n = s.needle + 1
    if s.tip_structure is None:
        where = f"on the {ctx.atlas.structures[s.bone].name}" if s.bone else "in no named structure"
        out = f"Needle {n} is {where}."
    else:
        st = ctx.atlas.structures[s.tip_structure]
        out = f"Needle {n} is in the {st.name}"
        if s.bone:
            out += f" (resting on the {ctx.atlas.structures[s.bone].name})"
        if st.kind == "muscle":
            inn = st.innervation
            if st.level and st.muscle and st.muscle.startswith(("multifidus", "rotatores")):
                out += f", supplied level by level (dorsal ramus {st.level})"
            elif inn is not None:
                nerve = inn.nerve if inn.nerve.lower().endswith(("nerve", "nerves", "rami", "ramus")) else f"{inn.nerve} nerve"
                out += f", supplied by the {nerve} ({_seg_text(inn.roots)})"
            segs = set(st.segments)
            dx = ctx.scenario.diagnosis.segments if ctx.scenario is not None else []
            on = [g for g in dx if g in segs]
            out += f": on segment {', '.join(on)}." if on else (
                f": off segment (the case is {', '.join(dx)})." if dx else ".")
        else:
            out += "."
        if s.tip_structure in ctx.target_ids:
            out += " It is a target."
    if twitched is not None and s.tip_kind == "muscle":
        out += " Twitch elicited." if twitched else " No twitch."
    return out


@register
class NeedleLocation(_PerNeedle):
    """Which structure each tip is in and whether it is a target (targeting family)."""

    name, family, unit = "on_target", "targeting", "needles"

    def start(self, context):
        super().start(context)
        self.twitched: set[int] = set()

    def add_event(self, e):
        if e.kind == "twitch" and e.needle is not None:
            self.twitched.add(e.needle)

    def result(self):
        tg = self.ctx.target_ids
        details, hits = [], 0
        for n, s in sorted(self.final.items()):
            is_t = s.tip_structure in tg
            hits += is_t
            details.append({"needle": n + 1, "structure": s.tip_structure, "target": is_t,
                            "segments": list(self.ctx.atlas.structures[s.tip_structure].segments) if s.tip_structure else [],
                            "twitch": n in self.twitched, "depth_mm": round(s.depth, 1),
                            "sentence": describe_needle(self.ctx, s, n in self.twitched)})
        total = len(self.final)
        score = hits / total if total else 0.0
        sent = f"{hits} of {total} needles ended in a target muscle." if total else "No needle was placed."
        return MetricResult(self.name, hits, self.unit, sent, score, self.family, details)


def level_error_of(ctx, structure_id) -> int | None:
    """Levels between a segmental (multifidus) muscle and the nearest affected segment."""
    if ctx.scenario is None or structure_id is None:
        return None
    st = ctx.atlas.structures[structure_id]
    if st.kind != "muscle" or not st.level:
        return None
    return min(abs(level_distance(st.level, g)) for g in ctx.scenario.diagnosis.segments)


@register
class LevelError(_PerNeedle):
    """Level error of paraspinal (segmental) needles against the affected segment(s)."""

    name, family, unit = "level_error", "level_accuracy", "levels"

    def result(self):
        tol = self.ctx.scenario.targets.level_tolerance if self.ctx.scenario is not None else 1
        errs, details = [], []
        for n, s in sorted(self.final.items()):
            e = level_error_of(self.ctx, s.tip_structure)
            if e is None:
                continue
            errs.append(e)
            lvl = self.ctx.atlas.structures[s.tip_structure].level
            details.append({"needle": n + 1, "structure": s.tip_structure, "level": lvl, "level_error": e,
                            "sentence": f"Needle {n + 1} is at {lvl}: "
                                        + ("on the affected level." if e == 0 else
                                           f"{e} level{'s' if e > 1 else ''} from the affected segment.")})
        if not errs:
            has_para = any(t.kind == "paraspinal" for t in self.ctx.targets)
            return MetricResult(self.name, None, self.unit,
                                "No needle reached a segmental paraspinal muscle (multifidus)."
                                + (" The affected segment was not needled at the spine." if has_para else ""),
                                0.0 if has_para else None, self.family, details)
        mean = float(np.mean(errs))
        score = float(np.mean([max(0.0, 1.0 - e / (tol + 1)) for e in errs]))
        return MetricResult(self.name, max(errs), self.unit,
                            f"Paraspinal needles were on average {mean:.1f} level(s) from the affected segment "
                            f"(worst {max(errs)}).", score, self.family, details)


@register
class DepthError(_PerNeedle):
    name, unit = "depth_error", "mm"

    def result(self):
        tg = self.ctx.target_ids
        details, worst = [], 0.0
        for n, s in sorted(self.final.items()):
            t = tg.get(s.tip_structure)
            if t is None or not t.depth_mm:
                continue
            lo, hi = t.depth_mm
            e = 0.0 if lo <= s.depth <= hi else (s.depth - hi if s.depth > hi else s.depth - lo)
            worst = max(worst, abs(e))
            details.append({"needle": n + 1, "depth_mm": round(s.depth, 1), "range_mm": [lo, hi],
                            "error_mm": round(e, 1),
                            "sentence": f"Needle {n + 1} is {s.depth:.0f} mm deep; the target lies at {lo:g}-{hi:g} mm"
                                        + ("." if e == 0 else f" ({abs(e):.0f} mm too {'deep' if e > 0 else 'shallow'}).")})
        sent = (f"Worst depth error against a target's range: {worst:.0f} mm." if details
                else "No needle ended in a target with a depth range.")
        return MetricResult(self.name, worst if details else None, self.unit, sent, None, None, details)


@register
class LocusDistance(_PerNeedle):
    name, unit = "locus_distance", "mm"

    def result(self):
        loci = self.ctx.loci
        if not loci:
            return MetricResult(self.name, None, self.unit, "The case has no trigger loci.", None)
        xyz = np.array([lc.xyz for lc in loci])
        details, best = [], math.inf
        for n, s in sorted(self.final.items()):
            d = np.linalg.norm(xyz - s.tip, axis=1)
            k = int(np.argmin(d))
            best = min(best, float(d[k]))
            details.append({"needle": n + 1, "distance_mm": round(float(d[k]), 1), "locus_structure": loci[k].structure,
                            "sentence": f"Needle {n + 1}'s tip is {d[k]:.0f} mm from the nearest trigger locus "
                                        f"(in the {self._name(loci[k].structure)})."})
        sent = f"Closest tip to a trigger locus: {best:.0f} mm." if details else "No needle was placed."
        return MetricResult(self.name, best if details else None, self.unit, sent, None, None, details)


@register
class Twitches(Metric):
    name, unit = "twitches", "twitches"

    def start(self, context):
        super().start(context)
        self.ev = []

    def add_event(self, e):
        if e.kind == "twitch":
            self.ev.append(e)

    def result(self):
        muscles = sorted({e.structure for e in self.ev})
        names = ", ".join(self.ctx.atlas.structures[m].name for m in muscles)
        sent = (f"{len(self.ev)} local twitch response(s), in the {names}." if self.ev
                else "No local twitch response was elicited.")
        return MetricResult(self.name, len(self.ev), self.unit, sent, None, None,
                            [{"t": e.t, "needle": e.needle + 1, "structure": e.structure,
                              "amplitude": round(e.data.get("amplitude", 0.0), 3)} for e in self.ev])


@register
class Breaches(Metric):
    """Entering a danger structure (safety family; a watched breach fails the attempt)."""

    name, family, unit = "breaches", "safety", "breaches"

    def start(self, context):
        super().start(context)
        self.seen: dict[tuple[int, str], dict] = {}

    def add_sample(self, s):
        for st, harm, depth in s.breaches:
            if (s.needle, st) not in self.seen:
                self.seen[(s.needle, st)] = {"needle": s.needle + 1, "structure": st, "harm": harm,
                                             "depth_mm": round(depth, 1), "t": s.t,
                                             "watched": self.ctx.watched_breach(st)}

    @property
    def failing(self) -> list[dict]:
        return [b for b in self.seen.values() if b["watched"]]

    def result(self):
        det = list(self.seen.values())
        for b in det:
            b["sentence"] = (f"Needle {b['needle']} entered the {self.ctx.atlas.structures[b['structure']].name} "
                             f"at {b['depth_mm']:.0f} mm: risk of {b['harm']}.")
        sent = " ".join(b["sentence"] for b in det) if det else "No danger structure was entered."
        return MetricResult(self.name, len(det), self.unit, sent, 0.0 if self.failing else 1.0, self.family, det)


@register
class Clearance(Metric):
    name, unit = "min_clearance", "mm"

    def start(self, context):
        super().start(context)
        self.best: dict[str, tuple[str, float]] = {}

    def add_sample(self, s):
        for st, (harm, mm) in s.clearances.items():
            if st not in self.best or mm < self.best[st][1]:
                self.best[st] = (harm, mm)

    def result(self):
        if not self.best:
            return MetricResult(self.name, None, self.unit, "No danger structure was near a needle.")
        # closest first; equals by name (not by which needle came first: a batch grading
        # measures each structure's closest approach once)
        det = [{"structure": st, "harm": h, "clearance_mm": round(mm, 1)} for st, (h, mm) in
               sorted(self.best.items(), key=lambda kv: (kv[1][1], kv[0]))]
        st, (h, mm) = min(self.best.items(), key=lambda kv: (kv[1][1], kv[0]))
        name = self.ctx.atlas.structures[st].name
        sent = (f"Closest approach to danger: {mm:.0f} mm from the {name} ({h})." if mm > 0 else
                f"A needle reached the {name} ({h}).")
        return MetricResult(self.name, mm, self.unit, sent, None, None, det)


@register
class BoneContacts(Metric):
    name, unit = "bone_contacts", "contacts"

    def start(self, context):
        super().start(context)
        self.n, self.last = 0, {}

    def add_sample(self, s):
        if s.bone and self.last.get(s.needle) != s.bone:
            self.n += 1
        self.last[s.needle] = s.bone

    def result(self):
        return MetricResult(self.name, self.n, self.unit,
                            f"The needle touched bone {self.n} time(s)." if self.n else "No bone contact.")


@register
class Technique(Metric):
    """Punctures, redirections, path length in tissue, swept area, timing (after Perk Tutor)."""

    name, family, unit = "technique", "technique", "score"

    def start(self, context):
        super().start(context)
        self.punctures = self.redirections = 0
        self.path = 0.0
        self.swept = 0.0
        self.prev: dict[int, PoseSample] = {}
        self.t0 = self.t1 = None
        self.first_target = None

    def add_sample(self, s):
        self.t0 = s.t if self.t0 is None else min(self.t0, s.t)
        self.t1 = s.t if self.t1 is None else max(self.t1, s.t)
        if s.action == "insert":
            self.punctures += 1
        elif s.action == "redirect":
            self.redirections += 1
        p = self.prev.get(s.needle)
        if p is not None:
            self.path += abs(s.depth - p.depth)
            cosang = float(np.clip(np.dot(p.direction, s.direction), -1.0, 1.0))
            ang = math.acos(cosang)
            if ang > 1e-6:  # the shaft swept a triangle (pivoting about the entry)
                self.swept += 0.5 * p.depth * s.depth * math.sin(ang)
        else:
            self.path += s.depth
        self.prev[s.needle] = s
        if self.first_target is None and s.tip_structure in self.ctx.target_ids:
            self.first_target = s.t

    def result(self):
        n = max(1, len(self.prev))
        ttf = None if self.first_target is None else self.first_target - (self.t0 or 0.0)
        # the session's wall time when it says when it ended (from its start), else the moves' span
        end = getattr(self.ctx, "t_end", None)
        total = float(end) if end is not None else (0.0 if self.t0 is None else self.t1 - self.t0)
        score = max(0.0, 1.0 - 0.15 * self.redirections / n - 0.001 * self.swept / n
                    - 0.2 * max(0, self.punctures - n) / n)
        det = [{"punctures": self.punctures, "redirections": self.redirections,
                "path_in_tissue_mm": round(self.path, 1), "tissue_damage_mm2": round(self.swept, 1),
                "time_to_first_target_s": None if ttf is None else round(ttf, 2), "total_time_s": round(total, 2)}]
        sweep = ("; re-aim only after withdrawing to the fat (R): pivoting the needle while deep "
                 "tears the muscle" if self.swept / n > 150.0 else "")
        sent = (f"{self.punctures} skin puncture(s), {self.redirections} redirection(s), "
                f"{self.path:.0f} mm of needle travel in tissue{sweep}; "
                + (f"first target after {ttf:.0f} s; " if ttf is not None else "no target reached; ")
                + f"total {total:.0f} s.")
        return MetricResult(self.name, round(score, 3), self.unit, sent, score, self.family, det)


@register
class Coverage(_PerNeedle):
    """Paraspinal targets at the affected level(s), peripheral myotome targets, symptom-site-only needles."""

    name, family, unit = "coverage", "coverage", "%"

    def start(self, context):
        super().start(context)
        self.ever: set[str] = set()

    def add_sample(self, s):
        super().add_sample(s)
        if s.tip_structure:
            self.ever.add(s.tip_structure)

    def result(self):
        tg = self.ctx.targets
        para = [t for t in tg if t.kind == "paraspinal"]
        peri = [t for t in tg if t.kind == "peripheral"]
        para_hit = [t for t in para if t.structure in self.ever]
        peri_hit = [t for t in peri if t.structure in self.ever]
        # paraspinal: each affected segment (and side) covered by a needle within tolerance
        sc = self.ctx.scenario
        groups = {}
        for t in para:
            groups.setdefault((tuple(t.segments), t.side), []).append(t)
        para_share = (sum(any(t.structure in self.ever for t in g) for g in groups.values()) / len(groups)
                      if groups else None)
        peri_share = min(1.0, len(peri_hit) / min(3, len(peri))) if peri else None
        parts = [x for x in (para_share, peri_share) if x is not None]
        score = float(np.mean(parts)) if parts else 0.0
        # symptom-site-only needles: in a painful/tender structure that is not a target
        symptom = set()
        if sc is not None:
            symptom = {p.structure for p in sc.patient.pain if p.structure} | {
                f.structure for f in sc.patient.findings if f.structure}
        tids = self.ctx.target_ids
        local = [n for n, s in self.final.items() if s.tip_structure in symptom and s.tip_structure not in tids]
        share_local = len(local) / len(self.final) if self.final else 0.0
        sent = (f"Paraspinal coverage: {len(para_hit)} of {len(para)} paraspinal targets reached"
                + (f" ({para_share:.0%} of the affected levels)" if para_share is not None else "")
                + f"; peripheral myotome: {len(peri_hit)} of {len(peri)} reached. ")
        sent += (f"{len(local)} of {len(self.final)} needles treated a symptom site only (local dry needling, "
                 "not the segment)." if local else "No needle treated a symptom site only.")
        missed_groups = [{"segments": list(k[0]), "side": k[1]} for k, g in groups.items()
                         if not any(t.structure in self.ever for t in g)]
        det = [{"paraspinal_reached": [t.structure for t in para_hit], "peripheral_reached": [t.structure for t in peri_hit],
                "symptom_site_only_share": round(share_local, 3), "paraspinal_groups": len(groups),
                "paraspinal_groups_missed": missed_groups, "peripheral_targets": len(peri)}]
        return MetricResult(self.name, round(100 * score, 1), self.unit, sent, score, self.family, det)


@register
class NeedleZones(Metric):
    """Needles longer than the case allows in a zone (e.g. 19 mm over the rhomboids)."""

    name, unit = "needle_zones", "needles"

    def start(self, context):
        super().start(context)
        self.zones = []
        sc = context.scenario
        for z in (sc.safety.zones if sc is not None else []):
            try:
                self.zones.append((z, context.atlas.landmark(z.landmark).xyz))
            except Exception:
                continue
        self.out: list[dict] = []

    def add_sample(self, s):
        if s.action != "insert" or s.length_mm is None:
            return
        for z, xyz in self.zones:
            if s.length_mm > z.max_length_mm and float(np.linalg.norm(s.entry - xyz)) <= z.radius_mm:
                self.out.append({"needle": s.needle + 1, "length_mm": s.length_mm, "max_length_mm": z.max_length_mm,
                                 "landmark": z.landmark, "reason": z.reason or "",
                                 "sentence": f"Needle {s.needle + 1} ({s.length_mm:g} mm) is longer than the "
                                             f"{z.max_length_mm:g} mm allowed within {z.radius_mm:g} mm of "
                                             f"{z.landmark}" + (f": {z.reason}." if z.reason else ".")})

    def result(self):
        sent = " ".join(d["sentence"] for d in self.out) if self.out else "Every needle suited its zone."
        return MetricResult(self.name, len(self.out), self.unit, sent, None, None, self.out)
