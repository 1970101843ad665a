"""What a reviewer would catch (core/training/scenario/review.py), on mutated copies of the
shipped cases: placeholders, findings/targets/quiz answers pointing at another segment than
the diagnosis, tender points far from their muscle, a target muscle absent from the body;
each a warning at file:line with a suggestion, an error under ``--strict``."""

from __future__ import annotations

from pathlib import Path

import pytest

from imssim.cli import main
from imssim.core.model.atlas import Atlas
from imssim.core.training.scenario import library, library_dir, load_scenario, validate_file
from imssim.core.training.scenario.review import choice_segments
from imssim.core.training.scenario.template import new_scenario_text


def mutate(tmp_path: Path, case: str, *edits: tuple[str, str], name: str | None = None) -> Path:
    """A copy of the shipped ``case`` with each (old, new) text replaced once."""
    text = (library_dir() / f"{case}.yaml").read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not unique in {case}"
        text = text.replace(old, new)
    p = tmp_path / (name or f"{case}.yaml")
    p.write_text(text, encoding="utf-8")
    return p


def line_of(p: Path, needle: str, nth: int = 0) -> int:
    return [i for i, x in enumerate(p.read_text().splitlines(), 1) if needle in x][nth]


def by_path(issues) -> dict[str, list]:
    out: dict[str, list] = {}
    for i in issues:
        out.setdefault(i.path, []).append(i)
    return out


def strict(p: Path) -> int:
    return main(["scenario", "validate", "--strict", "--quiet", str(p)])


def test_shipped_scenarios_are_clean_under_strict(atlas, capsys):
    for f in library():
        issues = validate_file(f, atlas)
        assert issues == [], "\n".join(str(i) for i in issues)
    assert main(["scenario", "validate", "--strict", *map(str, library())]) == 0
    assert "warning" not in capsys.readouterr().out


def test_placeholders_and_short_brief(tmp_path, atlas, capsys):
    p = mutate(tmp_path, "l5-radiculopathy-low-back",
               ("    Warehouse worker. Eight", "    TODO check: warehouse worker. Eight"),
               ("title: Chronic low back pain with right L5 radiculopathy", "title: Chronic low back pain (TBD)"),
               ("""  presenting_complaint: >-
    Aching low back pain on the right with a deep ache spreading into the lateral
    right leg and the top of the foot, worse after sitting.""", "  presenting_complaint: Back pain."))
    issues = validate_file(p, atlas)
    assert all(i.severity == "warning" for i in issues)
    got = by_path(issues)
    (h,) = got["patient.history"]
    assert h.line == line_of(p, "history:") and "placeholder 'TODO'" in h.message
    assert "write the real content" in h.message
    (t,) = got["title"]
    assert t.line == line_of(p, "title:") and "'TBD'" in t.message
    (c,) = got["patient.presenting_complaint"]
    assert c.line == line_of(p, "presenting_complaint:") and "2 word(s)" in c.message
    assert "describe the patient's story" in c.message
    # plain validate: ok with warnings; --strict: they fail it, each printed as file:line
    assert main(["scenario", "validate", str(p)]) == 0
    assert "ok (3 warning(s))" in capsys.readouterr().out
    assert strict(p) == 1
    out = capsys.readouterr().out
    assert f"{p}:{h.line}:" in out and "warning: patient.history: placeholder 'TODO'" in out


def test_no_learning_objectives(tmp_path, atlas):
    p = mutate(tmp_path, "l5-radiculopathy-low-back", ("learning_objectives:", "learning_objectives: []\nold_objectives:"))
    # old_objectives is not a field: take the list out properly instead
    text = p.read_text()
    start = text.index("old_objectives:")
    end = text.index("references:")
    p.write_text(text[:start] + text[end:])
    (i,) = validate_file(p, atlas)
    assert i.path == "learning_objectives" and i.line == line_of(p, "learning_objectives")
    assert "no learning objectives" in i.message


def test_fresh_template_fails_strict_but_loads(tmp_path, atlas, capsys):
    p = tmp_path / "new.yaml"
    p.write_text(new_scenario_text(atlas, "L5", "right", "chronic low back pain"))
    issues = validate_file(p, atlas)
    assert issues and all(i.severity == "warning" for i in issues)
    paths = {i.path for i in issues}
    assert {"author", "patient.history", "patient.presenting_complaint", "patient.pain[0].region",
            "quiz[0].explanation"} <= paths
    assert all("placeholder" in i.message or "word(s)" in i.message for i in issues)
    load_scenario(p, atlas)  # a draft still opens
    assert strict(p) == 1
    assert main(["scenario", "validate", str(p)]) == 0


def test_diagnosis_t4_with_s1_findings_and_answer(tmp_path, atlas, capsys):
    """The issue's case: the diagnosis says T4, the findings and the quiz answer say S1."""
    p = mutate(tmp_path, "s1-radiculopathy-piriformis", ("segments: [S1]", "segments: [T4]"))
    issues = validate_file(p, atlas)
    assert all(i.severity == "warning" for i in issues)
    got = by_path(issues)
    (f0,) = got["patient.findings[0].structure"]
    assert f0.line == line_of(p, "structure: piriformis_r", 1)  # [0] is the pain area's
    assert "tender point in piriformis_r" in f0.message and "another segment than the diagnosis (T4)" in f0.message
    assert "change diagnosis.segments" in f0.message and "e.g. " in f0.message
    (f1,) = got["patient.findings[1].structure"]
    assert "taut band in gastrocnemius_lateral_head_r" in f1.message
    (m0,) = got["supersensitive_muscles[0].structure"]
    assert "multifidus_S1_r (level S1) is not supplied by the diagnosed segment(s) T4" in m0.message
    (a0,) = got["targets.add[0].structure"]
    assert "target piriformis_r" in a0.message
    (q,) = got["quiz[0].answer"]
    assert q.line == line_of(p, "answer: 2")
    assert "'S1' names another segment than the diagnosis (T4)" in q.message
    assert "add T4 to the choices" in q.message
    assert main(["scenario", "validate", str(p)]) == 0  # today's "ok" ...
    assert strict(p) == 1  # ... is an error under --strict


def test_quiz_answer_naming_another_segment_range_choices(tmp_path, atlas):
    p = mutate(tmp_path, "lateral-elbow-c6-c7", ("    choices: [C3-C4, C6-C7, T4-T5, L5-S1]\n    answer: 1",
                                                 "    choices: [C3-C4, C6-C7, T4-T5, L5-S1]\n    answer: 3"))
    (q,) = validate_file(p, atlas)
    assert q.path == "quiz[0].answer" and q.line == line_of(p, "answer: 3")
    assert "'L5-S1'" in q.message and "(C6, C7)" in q.message and "set answer: 1" in q.message


def test_choice_segments():
    assert choice_segments("L5") == ["L5"]
    assert choice_segments("C5-C6") == ["C5", "C6"]
    assert choice_segments("C1-C3") == ["C1", "C2", "C3"]
    assert choice_segments("L5/S1") == ["L5", "S1"]
    assert choice_segments("l5 and s1") == ["L5", "S1"]
    assert choice_segments("Its middle") is None
    assert choice_segments("L5 root") is None
    assert choice_segments("13 mm") is None


def test_paraspinal_finding_at_another_level(tmp_path, atlas):
    p = mutate(tmp_path, "l5-radiculopathy-low-back",
               ("      structure: multifidus_L5_r\n      locus:", "      structure: multifidus_L3_r\n      locus:"))
    issues = validate_file(p, atlas)
    got = by_path(issues)
    (f,) = got["patient.findings[0].structure"]
    assert f.line == line_of(p, "structure: multifidus_L3_r")
    assert "multifidus_L3_r (level L3) points at another segment than the diagnosis (L5)" in f.message
    assert "multifidus_L5_r" in f.message  # the suggestion names the level's own muscle


def test_supersensitive_muscle_of_another_segment(tmp_path, atlas):
    p = mutate(tmp_path, "l5-radiculopathy-low-back", ("  - structure: fibularis_longus_r\n    supersensitivity",
                                                       "  - structure: deltoid_r\n    supersensitivity"))
    (m,) = validate_file(p, atlas)
    assert m.path == "supersensitive_muscles[3].structure" and m.line == line_of(p, "structure: deltoid_r")
    assert "deltoid_r (roots C5-C6) is not supplied by the diagnosed segment(s) L5" in m.message
    assert "(e.g. " in m.message and "fibularis_longus_r" in m.message  # L5 muscles of the body


def test_tender_point_far_from_its_muscle(tmp_path, atlas):
    p = mutate(tmp_path, "l5-radiculopathy-low-back", ("offset_mm: [-15, 0, 0]", "offset_mm: [-15, 0, 150]"))
    (f,) = validate_file(p, atlas)
    assert f.path == "patient.findings[0].locus" and f.line == line_of(p, "locus:")
    assert "the tender point lies" in f.message and "mm from multifidus_L5_r" in f.message
    assert "name that muscle, or move the point" in f.message or "move the point onto multifidus_L5_r" in f.message
    assert strict(p) == 1


def test_target_muscle_absent_from_the_body(tmp_path, atlas):
    """An imported body without piriformis: the case's added target cannot be found."""
    body = Atlas("imported-body", [s for s in atlas.structures.values() if not s.id.startswith("piriformis")],
                 atlas.landmarks.values())
    p = mutate(tmp_path, "s1-radiculopathy-piriformis")
    issues = validate_file(p, body)
    got = by_path(issues)
    (t,) = got["targets.add[0].structure"]
    assert t.severity == "error" and t.line == line_of(p, "- structure: piriformis_r   # re-weighted")
    assert "target muscle 'piriformis_r' is absent from this body (atlas 'imported-body')" in t.message
    assert "remove the target or pick a muscle the body has (`imssim atlas list --kind muscle`)" in t.message


def test_s1_template_findings_fit_the_segment(tmp_path, atlas):
    """A body without multifidus at S1 (as the built-in one was, as an import may be): the
    L5 multifidus stands in as a supersensitive muscle and target, never as a finding."""
    body = Atlas("no-sacral-multifidus",
                 [s for s in atlas.structures.values() if not (s.muscle or "").startswith(("multifidus", "rotatores"))
                  or s.level != "S1"], atlas.landmarks.values())
    text = new_scenario_text(body, "S1", "right", "buttock pain")
    findings = text.split("  findings:")[1].split("\ndiagnosis:")[0]
    assert "multifidus" not in findings  # was: a tender point in multifidus L5
    assert "structure: multifidus_L5_r    # nearest multifidus to S1: none at S1 in this body" in text
    p = tmp_path / "s1.yaml"
    p.write_text(text)
    issues = validate_file(p, body)
    assert all("placeholder" in i.message or "word(s)" in i.message for i in issues), \
        "\n".join(str(i) for i in issues)
    # where the body has the level's multifidus, the paraspinal tender point is at the level
    for seg, mf in (("S1", "multifidus_S1_r"), ("L5", "multifidus_L5_r")):
        t = new_scenario_text(atlas, seg, "right", "low back pain")
        assert f"structure: {mf}\n" in t.split("  findings:")[1].split("\ndiagnosis:")[0]


@pytest.mark.parametrize("seg,side", [("C1", "right"), ("C5,C6", "left"), ("T4", "bilateral"), ("L4", "left")])
def test_templates_are_consistent_with_their_diagnosis(tmp_path, atlas, seg, side):
    p = tmp_path / "t.yaml"
    p.write_text(new_scenario_text(atlas, seg, side, "pain"))
    other = [i for i in validate_file(p, atlas) if not ("placeholder" in i.message or "word(s)" in i.message)]
    assert other == [], "\n".join(str(i) for i in other)


def test_local_mark_keeps_a_deliberately_non_segmental_muscle(tmp_path, atlas):
    """The thoracic case needles the rhomboids (C4-C5) over T4-T6 pain on purpose, and says so."""
    case = "thoracic-pneumothorax-risk"
    text = (library_dir() / f"{case}.yaml").read_text()
    marks = [x for x in text.splitlines() if "# local:" in x]
    assert len(marks) == 4
    p = mutate(tmp_path, case, *[(x, x.split("   # local:")[0]) for x in marks])
    got = by_path(validate_file(p, atlas))
    assert set(got) == {"patient.findings[1].structure", "supersensitive_muscles[0].structure",
                        "supersensitive_muscles[4].structure", "targets.add[0].structure"}
    assert all("end its line with `# local: why`" in i.message for v in got.values() for i in v)
    # a one-line flow item carries the mark after the braces
    q = mutate(tmp_path, "l5-radiculopathy-low-back", ("  - structure: fibularis_longus_r\n    supersensitivity: 0.6\n"
                                                       "    trigger_loci:\n      - fraction: 0.3\n        radius_mm: 10\n",
                                                       "  - {structure: deltoid_r, supersensitivity: 0.5}  # local: a test\n"),
               name="flow.yaml")
    assert validate_file(q, atlas) == []
