"""``imssim scenario validate|new|show|schema``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imssim.cli import main
from imssim.core.training.scenario import default_scenario_path, load_scenario, scenario_json_schema

REPO = Path(__file__).resolve().parents[1]


def test_validate_ok_and_exit_codes(tmp_path, capsys, atlas):
    assert main(["scenario", "validate", str(default_scenario_path())]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(default_scenario_path().read_text().replace("age: 46", "age: old").replace(
        "structure: tibialis_anterior_r", "structure: tibialis_anterior_rr"))
    assert main(["scenario", "validate", "--no-atlas", str(bad)]) == 1
    lines = bad.read_text().splitlines()
    age_line = next(i for i, x in enumerate(lines, 1) if "age: old" in x)
    ta_line = next(i for i, x in enumerate(lines, 1) if "tibialis_anterior_rr" in x)
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{bad}:{age_line}:8: patient.age: Input should be a valid integer, unable to parse string as an integer (got 'old')"]
    bad.write_text(bad.read_text().replace("age: old", "age: 46"))
    assert main(["scenario", "validate", "--no-atlas", str(bad)]) == 0
    assert main(["scenario", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:{ta_line}:16: supersensitive_muscles[2].structure: unknown structure 'tibialis_anterior_rr'" in out
    assert "did you mean 'tibialis_anterior_r'" in out


def test_validate_unknown_file_is_one_clean_line(capsys, atlas):
    assert main(["scenario", "validate", "no-such-case"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no-such-case: no such scenario file or library id")


def test_new_writes_a_valid_commented_file(tmp_path, capsys, atlas):
    out = tmp_path / "mine.yaml"
    assert main(["scenario", "new", "--segment", "L5", "--side", "right",
                 "--condition", "chronic low back pain", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("#") and "Sources" in text and "TODO" in text
    sc = load_scenario(out, atlas)
    assert sc.diagnosis.segments == ["L5"] and sc.diagnosis.side == "right"
    assert sc.supersensitive_muscles[0].structure == "multifidus_L5_r"
    assert "#   multifidus_L5_r" in text  # derived targets listed as comments
    from imssim.core.training.scenario import dump_document

    assert dump_document(sc.document) == text  # the generated file round-trips
    # refuses to overwrite
    assert main(["scenario", "new", "--segment", "L5", "--side", "right", "--condition", "x", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    # bilateral, several segments
    out2 = tmp_path / "two.yaml"
    assert main(["scenario", "new", "--segment", "L4,L5", "--side", "bilateral", "--condition", "lbp", "-o", str(out2)]) == 0
    sc2 = load_scenario(out2, atlas)
    assert sc2.diagnosis.side == "bilateral" and sc2.diagnosis.segments == ["L4", "L5"]
    assert main(["scenario", "new", "--segment", "L9", "--side", "right", "--condition", "x", "-o", "-"]) == 2
    assert "'L9' is not a spinal segment" in capsys.readouterr().err


def test_show_prints_case_and_targets(capsys, atlas):
    assert main(["scenario", "show", "l5-radiculopathy-low-back"]) == 0
    out = capsys.readouterr().out
    assert "Chronic low back pain with right L5 radiculopathy" in out
    assert "multifidus_L5_r" in out and "paraspinal" in out and "gluteus_medius_r" in out
    assert main(["scenario", "show", "--json", str(default_scenario_path())]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["id"] == "l5-radiculopathy-low-back"
    kinds = {t["structure"]: t["kind"] for t in d["derived_targets"]}
    assert kinds["multifidus_L5_r"] == "paraspinal" and kinds["tibialis_anterior_r"] == "peripheral"
    assert len(d["trigger_loci_xyz"]["gluteus_medius_r"]) == 2


def test_schema_command(tmp_path, capsys):
    assert main(["scenario", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == scenario_json_schema()
    out = tmp_path / "s.json"
    assert main(["scenario", "schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"].startswith("imssim scenario")


def test_broken_scenario_never_prints_a_traceback(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\nid: [unclosed\n")
    p = subprocess.run([sys.executable, "-m", "imssim.cli", "scenario", "show", str(bad)],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"imssim: error: {bad}:")
