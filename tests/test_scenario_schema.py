"""Scenario schema and loader: clean file:line:column errors, safe loading, round-trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from imssim.core.training.scenario import (
    MAX_SCENARIO_BYTES,
    Scenario,
    ScenarioError,
    default_scenario_path,
    dump_document,
    find_scenario,
    library,
    load_scenario,
    save_scenario,
    scenario_json_schema,
    validate_file,
)

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?:warning: )?(?:(?P<path>[\w.\[\]]+): )?(?P<msg>.+)$")

MINIMAL = """\
# a comment that must survive
version: 1
id: tiny-case
title: Tiny case
author: Test
patient:
  age: 40
  sex: female
  history: Some history.
  presenting_complaint: Back pain.
diagnosis:
  condition: chronic low back pain
  segments: [L5]
  side: right
"""


def issues_for(text: str, tmp_path: Path, name: str = "case.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return validate_file(p)


def only(issues):
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


def test_minimal_scenario_gets_defaults(tmp_path):
    p = tmp_path / "tiny-case.yaml"
    p.write_text(MINIMAL)
    sc = load_scenario(p)
    assert isinstance(sc, Scenario)
    assert sc.diagnosis.segments == ["L5"] and sc.diagnosis.sides == ("right",)
    assert sc.safety.watch is None and sc.safety.watch_all and sc.safety.breach_fails
    assert sc.targets.derive and sc.targets.level_tolerance == 1
    assert sc.modes.settings("exam").targets_shown is False
    assert sc.modes.settings().labels is True  # practice by default
    assert abs(sum(sc.scoring.weights.normalised().values()) - 1.0) < 1e-9
    assert sc.path == p


@pytest.mark.parametrize(
    "old,new,line,path,expect",
    [
        ("  age: 40", "  age: 4", 7, "patient.age", "greater than or equal to 12"),
        ("  sex: female", "  sex: fem", 8, "patient.sex", "'female', 'male' or 'other'"),
        ("  segments: [L5]", "  segments: [L5, L6]", 13, "diagnosis.segments[1]", "'L6' is not a spinal segment"),
        ("  side: right", "  side: up", 14, "diagnosis.side", "'left', 'right' or 'bilateral'"),
        ("  history: Some history.", "  histroy: Some history.", 9, "patient", "unknown field 'histroy'; did you mean 'history'?"),
        ("version: 1", "version: 2", 2, "version", "newer than this imssim reads"),
        ("id: tiny-case", "id: Tiny Case", 3, "id", "lowercase letters"),
        ("title: Tiny case", "title: Tiny: case", 4, "", "YAML syntax"),
    ],
)
def test_errors_name_line_column_and_field(tmp_path, old, new, line, path, expect):
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    i = only(issues_for(text, tmp_path))
    s = str(i)
    m = LINE.match(s)
    assert m, s
    assert m["file"].endswith("case.yaml")
    assert int(m["line"]) == line, s
    assert (m["path"] or "") == path, s
    assert expect in s


def test_missing_field_points_at_parent(tmp_path):
    i = only(issues_for(MINIMAL.replace("  presenting_complaint: Back pain.\n", ""), tmp_path))
    assert i.path == "patient" and i.line == 6
    assert "missing required field 'presenting_complaint'" in i.message


def test_all_errors_are_reported_at_once(tmp_path):
    text = MINIMAL.replace("age: 40", "age: -1").replace("side: right", "side: nowhere").replace("sex: female", "sex: 3")
    issues = issues_for(text, tmp_path)
    assert {i.path for i in issues} == {"patient.age", "patient.sex", "diagnosis.side"}
    assert [i.line for i in issues] == sorted(i.line for i in issues)


def test_text_read_as_mapping_gets_a_hint(tmp_path):
    text = MINIMAL + "learning_objectives:\n  - Judge depth: about 12 mm\n"
    i = only(issues_for(text, tmp_path))
    assert i.path == "learning_objectives[0]" and "put the text in quotes" in i.message


def test_locus_needs_exactly_one_way(tmp_path):
    text = MINIMAL + """supersensitive_muscles:
  - structure: gluteus_medius_r
    trigger_loci:
      - {fraction: 0.5, xyz: [1, 2, 3]}
      - {radius_mm: 5}
      - {fraction: 1.5}
"""
    issues = issues_for(text, tmp_path)
    by_path = {i.path: i for i in issues}
    assert "exactly one of" in by_path["supersensitive_muscles[0].trigger_loci[0]"].message
    assert "(got none)" in by_path["supersensitive_muscles[0].trigger_loci[1]"].message
    assert "less than or equal to 1" in by_path["supersensitive_muscles[0].trigger_loci[2].fraction"].message
    assert by_path["supersensitive_muscles[0].trigger_loci[2].fraction"].line == 20


def test_quiz_items_are_checked(tmp_path):
    text = MINIMAL + """quiz:
  - id: a
    type: multiple_choice
    question: Which?
    choices: [x, y]
    answer: 2
    explanation: because
  - id: a
    type: pick_structure
    question: Click it.
    answer: piriformis_r
    explanation: because
  - type: essay
    question: Why?
"""
    issues = issues_for(text, tmp_path)
    msgs = {i.path: i.message for i in issues}
    assert "out of range" in msgs["quiz[0]"]
    assert "multiple_choice" in msgs["quiz[2]"]
    # the duplicate id is reported once the items themselves are valid
    fixed = text.replace("answer: 2", "answer: [0, 1]").split("  - type: essay")[0]
    i = only(issues_for(fixed, tmp_path))
    assert "used twice" in i.message


def test_unknown_top_level_field_suggests(tmp_path):
    i = only(issues_for(MINIMAL + "supersensitive_muscle: []\n", tmp_path))
    assert i.line == 15 and i.column == 1
    assert "did you mean 'supersensitive_muscles'" in i.message


@pytest.mark.parametrize(
    "extra,expect",
    [
        ("evil: !!python/object/apply:os.system ['echo hi']\n", "tag"),
        ("evil: !custom {a: 1}\n", "tag"),
        ("learning_objectives: &x [a]\nreferences: *x\n", "anchors and aliases"),
        ("references: [2024-01-01]\n", "quotes"),
        ("---\nversion: 1\n", "2 YAML documents"),
        ("title: again\n", "YAML syntax"),  # duplicate key
        ("estimated_minutes: .inf\n", "finite"),
        ("zz: &b {a: 1}\nyy:\n  <<: *b\n", "merge keys"),
        ("references: " + "[" * 40 + "]" * 40 + "\n", "nested more than"),
        ("references: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than"),
        ("references: " + "[" * 100000 + "]" * 100000 + "\n", "nested more than"),
        ("a: &x 1\nreferences: [*x]\n", "anchors and aliases"),  # a scalar alias
    ],
)
def test_unsafe_or_odd_yaml_is_refused_cleanly(tmp_path, extra, expect):
    issues = issues_for(MINIMAL + extra, tmp_path)
    assert issues and all(i.severity == "error" for i in issues)
    assert any(expect in str(i) for i in issues), [str(i) for i in issues]


def test_size_limit(tmp_path):
    text = MINIMAL + "# " + "x" * MAX_SCENARIO_BYTES + "\n"
    i = only(issues_for(text, tmp_path))
    assert "limit" in i.message and i.line == 0


def test_not_a_mapping_and_empty(tmp_path):
    assert "mapping of fields" in only(issues_for("- a\n- b\n", tmp_path)).message
    assert "empty" in only(issues_for("# nothing\n", tmp_path)).message
    assert "not UTF-8" in str(only(issues_for_bytes(tmp_path, b"version: 1\ntitle: \xff\xfe\n")))


def issues_for_bytes(tmp_path, data: bytes):
    p = tmp_path / "bin.yaml"
    p.write_bytes(data)
    return validate_file(p)


def test_referenced_files_must_stay_in_the_folder(tmp_path):
    (tmp_path / "xray.png").write_bytes(b"png")
    ok = MINIMAL.replace("  presenting_complaint: Back pain.\n", "  presenting_complaint: Back pain.\n  images: [xray.png]\n")
    assert issues_for(ok, tmp_path) == []
    for bad, why in (("../outside.png", "inside the scenario's folder"), ("/etc/passwd", "inside the scenario's folder"),
                     ("missing.png", "does not exist")):
        i = only(issues_for(ok.replace("xray.png", bad), tmp_path))
        assert i.path == "patient.images[0]" and why in i.message


def test_round_trip_keeps_comments_and_order(tmp_path):
    src = default_scenario_path()
    sc = load_scenario(src)
    original = src.read_text()
    assert dump_document(sc.document) == original  # unchanged document: byte-identical
    sc.document["difficulty"] = "advanced"
    out = save_scenario(sc, tmp_path / "copy.yaml")
    text = out.read_text()
    assert "difficulty: advanced" in text
    assert "# each twitch about 70% of the one before" in text and "# names work as well as ids" in text
    keys = [k for k in load_scenario(out).document]
    assert keys == list(sc.document)
    assert text.replace("difficulty: advanced", "difficulty: beginner") == original


def test_library_files_are_schema_valid_and_cite_sources():
    files = library()
    assert len(files) >= 10
    for f in files:
        assert validate_file(f) == [], f
        text = f.read_text()
        header = text.split("\nversion:")[0]
        assert header.startswith("#") and "Sources" in header, f"{f.name}: header must cite its sources"
        sc = load_scenario(f)
        assert sc.id == f.stem, f"{f.name}: id {sc.id!r} should match the file name"
        assert dump_document(sc.document) == text, f"{f.name}: does not round-trip byte for byte"


def test_library_covers_the_main_indications():
    scs = [load_scenario(f) for f in library()]
    segs = {s for sc in scs for s in sc.diagnosis.segments}
    assert {"L4", "L5", "S1", "C5", "C6", "C7", "C1"} <= segs
    assert any(t.startswith("T") for t in segs)
    conds = " ".join(sc.diagnosis.condition for sc in scs)
    for word in ("low back", "neck", "fibromyalgia", "headache", "tendinopathy"):
        assert word in conds
    assert any(sc.modes.default == "quiz" and not sc.targets.derive for sc in scs)
    assert any(len(sc.diagnosis.segments) >= 3 for sc in scs)


def test_default_scenario_and_lookup_by_id():
    p = default_scenario_path()
    assert p.is_file()
    assert find_scenario("l5-radiculopathy-low-back") == p
    with pytest.raises(ScenarioError) as e:
        find_scenario("l5-radiculopathy-lowback")
    assert "did you mean l5-radiculopathy-low-back" in str(e.value)


def test_json_schema_export_is_in_docs_and_current():
    schema = scenario_json_schema()
    assert schema["properties"]["version"]["const"] == 1 or schema["properties"]["version"].get("enum") == [1]
    assert set(schema["required"]) >= {"version", "id", "title", "patient", "diagnosis"}
    assert "L5" in json.dumps(schema["$defs"]["Diagnosis"])
    doc = REPO / "docs" / "scenario.schema.json"
    assert json.loads(doc.read_text()) == schema, "run: imssim scenario schema -o docs/scenario.schema.json"



def test_round_trip_keeps_the_authors_indentation(tmp_path):
    compact = MINIMAL + "learning_objectives:\n- one  # c1\n- two\n"
    p = tmp_path / "compact.yaml"
    p.write_text(compact)
    sc = load_scenario(p)
    assert dump_document(sc.document) == compact
    sc.document["learning_objectives"].append("three")
    assert dump_document(sc.document) == compact + "- three\n"
