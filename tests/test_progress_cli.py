"""Issue 17 from the command line: imssim score --save [--course], imssim progress, imssim class,
imssim course show; the HTML reports hold their plots (decoded and checked as images)."""

from __future__ import annotations

import base64
import html as html_mod
import io
import json
import re

import pytest

from imssim.cli import main
from imssim.core.engines.physiology import Physiology

from progress_helpers import db_url, needle_to_point  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def placements(atlas, index, l5, tmp_path_factory):
    """A placements file with a needle at every trigger locus of the default case, and one with
    a single paraspinal needle."""
    needles = []
    for lc in Physiology(atlas, l5).loci:
        p = needle_to_point(index, lc.structure, lc.xyz)
        if p is not None:
            needles.append({"entry": [float(x) for x in p[0]], "toward": [float(x) for x in lc.xyz],
                            "length_mm": 75, "label": lc.structure})
    assert len({n["label"] for n in needles}) >= 3
    d = tmp_path_factory.mktemp("placements")
    good, one = d / "good.json", d / "one.json"
    good.write_text(json.dumps({"version": 1, "needles": needles}))
    one.write_text(json.dumps({"version": 1, "needles": needles[:1]}))
    return good, one


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _images(html: str):
    from PIL import Image

    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in imgs]


def test_score_save_course_progress_and_reports(capsys, placements, tmp_path, db_url, monkeypatch):
    good, one = placements
    case = "l5-radiculopathy-low-back"
    for k in range(3):
        code, out, err = _run(capsys, "score", case, str(good), "--save", "--student", "ann", "--course",
                              "--db", db_url, "--json", "--seed", str(k))
        d = json.loads(out)
        assert d["progress"]["saved"] is True and d["progress"]["course"]["session"] == k + 1
        assert d["progress"]["course"]["of"] == 8
    code, out, err = _run(capsys, "score", case, str(one), "--save", "--student", "bob", "--db", db_url)
    assert code == 1 and "FAIL (objectives)" in out and "Saved for bob" in out
    code, out, err = _run(capsys, "progress", "--student", "ann", "--db", db_url)
    assert code == 0 and "ann: 3 session(s), 3 passed" in out and case in out and "coverage" in out
    # the trainee's progress as JSON
    code, out, err = _run(capsys, "progress", "--student", "ann", "--db", db_url, "--json")
    d = json.loads(out)
    assert code == 0 and d["attempts"] == 3 and [s["course_session"] for s in d["sessions"]] == [1, 2, 3]
    assert d["courses"][0]["points"][0]["pain_before"] == 7 and d["courses"][0]["expected"][0] == 1.0
    assert set(d["families"]) == {"targeting", "level_accuracy", "coverage", "safety", "technique"}
    # and as HTML: one self-contained file with the five plots, each a real PNG
    html_file = tmp_path / "ann.html"
    code, out, err = _run(capsys, "progress", "--student", "ann", "--db", db_url, "--html", str(html_file))
    html = html_file.read_text()
    assert code == 0 and "<img" in html and "http" not in html.split("<body>")[1]
    imgs = _images(html)
    assert len(imgs) == 5 and all(i.size[0] >= 700 and i.size[1] >= 250 for i in imgs)
    for title in ("Score over attempts", "Each metric's trend", "Level error and danger clearance over time",
                  "The course's patient recovery curve", "Each muscle's release over the course"):
        assert html_mod.escape(title) in html
    # the course goes on where it stopped
    code, out, err = _run(capsys, "course", "show", case, "--student", "ann", "--db", db_url, "--json")
    d = json.loads(out)
    assert d["session"] == 4 and d["findings"][0].startswith("Session 4: pain")
    # the class: instructors only
    code, out, err = _run(capsys, "class", "report", "--html", str(tmp_path / "c.html"), "--instructor", "ann",
                          "--db", db_url)
    assert code == 2 and "'ann' is not an instructor" in err and "imssim class add" in err
    _run(capsys, "class", "add", "Dr Gunn", "--role", "instructor", "--db", db_url)
    code, out, err = _run(capsys, "class", "list", "--instructor", "Dr Gunn", "--db", db_url, "--json")
    assert {p["name"]: p["sessions"] for p in json.loads(out)} == {"ann": 3, "bob": 1, "Dr Gunn": 0}
    code, out, err = _run(capsys, "class", "report", "--html", str(tmp_path / "c.html"), "--instructor", "Dr Gunn",
                          "--db", db_url, "--json")
    d = json.loads(out)
    assert code == 0 and d["sessions"] == 4 and d["trainees"] == 2
    assert any(m["mistake"] == "missed the peripheral objective" and m["sessions"] == 1 for m in d["mistakes"])
    chtml = (tmp_path / "c.html").read_text()
    assert len(_images(chtml)) == 4 and "Common mistakes across the class" in chtml


def test_save_needs_a_name_and_course_needs_save(capsys, placements, tmp_path, monkeypatch):
    monkeypatch.delenv("IMSSIM_TRAINEE", raising=False)
    good, _ = placements
    code, out, err = _run(capsys, "score", "l5-radiculopathy-low-back", str(good), "--save")
    assert code == 2 and "--student NAME" in err
    code, out, err = _run(capsys, "score", "l5-radiculopathy-low-back", str(good), "--course")
    assert code == 2 and "--course needs --save" in err


def test_score_save_with_the_server_down_keeps_the_session(capsys, placements, tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    good, _ = placements
    url = "postgresql://teacher:s3cret@127.0.0.1:9/class"
    code, out, err = _run(capsys, "score", "l5-radiculopathy-low-back", str(good), "--save", "--student", "ann",
                          "--db", url)
    line = [x for x in err.splitlines() if x.startswith("imssim: error:")]
    assert len(line) == 1 and "teacher:***@127.0.0.1:9/class" in line[0] and "s3cret" not in err
    kept = list((tmp_path / "data" / "pending").glob("*.json"))
    assert len(kept) == 1 and str(kept[0]) in line[0]
    assert json.loads(kept[0].read_text())["record"]["trainee"] == "ann"
    assert code == 0  # the score itself passed; the session is not lost


def test_progress_for_someone_unknown_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("IMSSIM_DB_URL", raising=False)
    code, out, err = _run(capsys, "progress", "--student", "nobody")
    assert code == 2 and err.count("\n") == 1 and "no sessions saved for 'nobody'" in err
    assert str(tmp_path / "data" / "progress.sqlite") in err  # the default store is in the data folder


def test_cli_progress_commands_do_not_import_qt_or_vtk():
    import subprocess
    import sys

    code = ("import sys; from imssim.cli import build_parser; build_parser(); "
            "import imssim.cli.progress, imssim.core.training.progress, imssim.core.training.course; "
            "bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','vtk','pyvista','vtkmodules')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
