"""``imssim scenario new``: a commented, valid starting file from the segmental rule."""

from __future__ import annotations

import re

from ...model.atlas import SEGMENTS, Atlas, segment_index
from .model import Diagnosis, Scenario


def slug(segments: str, side: str, condition: str) -> str:
    s = f"{segments.replace(',', '-')}-{side}-{condition}".lower()
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")[:80]


def _q(s: str) -> str:
    """A YAML double-quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def new_scenario_text(atlas: Atlas, segments: str, side: str, condition: str, scenario_id: str | None = None) -> str:
    """The text of a new scenario for ``segments`` (e.g. "L5" or "C5,C6") on ``side``.

    The supersensitive muscles are prefilled with the multifidus at the level(s) and up to
    three peripheral muscles of the myotome (dominant-root muscles first); the derived
    targets are listed as comments so the author sees what the rule gives.
    """
    from .targets import derive_targets

    segs = [x.strip().upper() for x in re.split(r"[,\s]+", segments) if x.strip()]
    if not segs:
        raise ValueError("--segment: give at least one segment, e.g. L5")
    for x in segs:
        try:
            segment_index(x)
        except ValueError:
            raise ValueError(f"--segment: {x!r} is not a spinal segment; expected C1-C8, T1-T12, L1-L5 or S1-S5") from None
    if side not in ("left", "right", "bilateral"):
        raise ValueError("--side: expected left, right or bilateral")
    condition = " ".join(condition.split())
    if not condition:
        raise ValueError("--condition: must not be empty")
    sid = scenario_id or slug(",".join(segs), side, condition)
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", sid):
        raise ValueError("--id: use lowercase letters, digits and dashes")
    dx = Diagnosis(condition=condition, segments=segs, side=side)
    probe = Scenario.model_validate({
        "version": 1, "id": sid, "title": "x", "author": "x",
        "patient": {"age": 40, "sex": "female", "history": "x", "presenting_complaint": "x"},
        "diagnosis": dx.model_dump(),
    })
    targets = derive_targets(probe, atlas)
    para = [t for t in targets if t.kind == "paraspinal"]
    peri = [t for t in targets if t.kind == "peripheral"]

    def span(t) -> int:
        st = atlas.structures.get(t.structure)
        return len(st.segments) if st is not None else 99

    # most representative first: covers more of the affected segments, weighs more, narrower supply
    peri.sort(key=lambda t: (-len(t.segments), -t.weight, span(t), t.structure))
    chosen = para[: 2 * len(segs)] + peri[:3]
    main_seg = segs[0]
    side_word = "both sides" if side == "bilateral" else f"the {side}"

    L: list[str] = []
    a = L.append
    a(f"# {condition.capitalize()} with {'/'.join(segs)} involvement on {side_word}.".replace("\n", " "))
    a("# Written by `imssim scenario new`; edit everything marked TODO.")
    a("#")
    a("# Sources of the clinical content (cite the ones you use; paraphrase, do not copy):")
    a("#  - Gunn CC et al. Dry needling of muscle motor points for chronic low-back pain.")
    a("#    Spine 1980;5:279-291 (the segmental IMS approach).")
    a("#  - Bogduk N et al. The human lumbar dorsal rami. J Anat 1982;134:383-397")
    a("#    (multifidus is supplied level by level).")
    a("#  - TODO: the sources of this case's history and findings.")
    a("version: 1")
    a(f"id: {sid}")
    segtxt = "/".join(segs)
    a("title: " + _q(f"{condition.capitalize()} ({segtxt}, {side})"))
    a("author: TODO your name")
    a("licence: CC-BY-4.0")
    a("difficulty: intermediate      # beginner | intermediate | advanced")
    a("estimated_minutes: 20")
    a("learning_objectives:")
    a(f"  - Infer the affected segment(s) ({', '.join(segs)}) from the examination findings.")
    a("  - Needle the paraspinal multifidus at the level, then the peripheral muscles of the myotome.")
    a("")
    a("patient:")
    a("  age: 45")
    a("  sex: female                  # female | male | other")
    a("  habitus: average             # lean | average | obese (sets skin and fat depth)")
    a("  history: TODO the history of the complaint.")
    a(f"  presenting_complaint: {_q(f'TODO what the patient says ({condition}).')}")
    a("  pain:                        # where it hurts")
    a("    - region: TODO")
    a(f"      side: {side}")
    a("  findings:                    # tender_point | taut_band | restricted_movement | positive_sign | other")
    # findings are the evidence a student reasons from: only muscles the diagnosed segments
    # supply (not a multifidus standing in from the next level, as L5 does for S1)
    evidence = [t for t in chosen if t.kind != "paraspinal" or t.level is None or t.level in segs]
    for t in evidence[:3]:
        a("    - kind: tender_point")
        a(f"      description: {_q(f'Tender, taut {t.name}.')}")
        a(f"      structure: {t.structure}")
    if not evidence:
        a("    - kind: other")
        a("      description: TODO")
    a("")
    a("diagnosis:")
    a(f"  condition: {_q(condition)}")
    a(f"  segments: [{', '.join(segs)}]")
    a(f"  side: {side}                # left | right | bilateral")
    a("")
    a("# Muscles the twitch model treats as supersensitive; trigger loci give where twitches")
    a("# are likely: by `landmark` (+ offset_mm, LPS), by `fraction` along the muscle, or by `xyz`.")
    a("supersensitive_muscles:" + ("" if chosen else " []"))
    for t in chosen:
        stand_in = t.kind == "paraspinal" and t.level is not None and t.level not in segs
        a(f"  - structure: {t.structure}" + (f"    # {t.reason}: none at {'/'.join(t.segments)} in this body"
                                             if stand_in else ""))
        a(f"    supersensitivity: {0.8 if t.kind == 'paraspinal' else 0.6}    # 0..1")
        a("    trigger_loci:")
        a(f"      - fraction: {0.4 if t.kind == 'paraspinal' else 0.3}")
        a("        radius_mm: 10")
    a("")
    a("physiology:")
    a("  twitch_probability_scale: 1.0")
    a("  habituation_factor: 0.7       # each twitch this fraction of the one before")
    a("  release_rate: 0.3             # supersensitivity released per twitch")
    a("")
    a("targets:")
    a("  derive: true                  # the segmental rule gives these targets:")
    for t in targets:
        a(f"  #   {t.structure:<34} {t.kind:<10} weight {t.weight:g}  ({t.reason})")
    a("  level_tolerance: 1")
    a("  add: []                       # e.g. - {structure: piriformis_r, weight: 1.0}")
    a("  remove: []                    # e.g. - semitendinosus_r")
    a("")
    a("safety:")
    a("  watch: all                    # or a list of danger structures")
    a("  needles:")
    a("    lengths_mm: [25, 40, 50, 60]")
    a("    gauges_mm: [0.25, 0.30]")
    if any(x.startswith("T") or x in ("C7", "C8") for x in segs):
        a("  # over the thorax the pleura is close: consider zones with short needles, e.g.")
        sfx = "l" if side == "left" else "r"
        a(f"  # zones: [{{landmark: scapula_medial_border_{sfx}, radius_mm: 80, max_length_mm: 19}}]")
    a("  max_needles: 10")
    a("  breach_fails: true")
    a("")
    a("modes:")
    a("  default: practice             # practice | quiz | exam")
    a("")
    i = segment_index(main_seg)
    lo = max(0, min(i - 1, len(SEGMENTS) - 4))
    choices = list(SEGMENTS[lo : lo + 4])
    a("quiz:")
    a("  - id: segment")
    a("    type: multiple_choice")
    a("    question: Which spinal segment is most likely involved?")
    a(f"    choices: [{', '.join(choices)}]")
    a(f"    answer: {choices.index(main_seg)}")
    a(f"    explanation: {_q(f'TODO why the findings point at {main_seg}.')}")
    if para:
        a("  - id: first-needle")
        a("    type: pick_structure")
        a("    question: Click the paraspinal muscle you would needle first.")
        a(f"    answer: [{', '.join(t.structure for t in para[:2])}]")
        a("    explanation: Multifidus is supplied level by level, so it is the segmental target.")
    a("")
    a("scoring:")
    a("  weights: {targeting: 0.3, level_accuracy: 0.2, coverage: 0.2, safety: 0.2, technique: 0.1}")
    a("  pass_mark: 70                 # percent")
    return "\n".join(L) + "\n"
