"""The imssim command: atlas inspection and the no-display path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from imssim.cli import main


def test_atlas_info_json(capsys, atlas):
    assert main(["atlas", "info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["structures"] == len(atlas)
    assert d["by_kind"]["muscle"] >= 150
    assert any(a["licence"] == "CC BY-SA 2.1 JP" and "BodyParts3D" in a["attribution"] for a in d["attributions"])
    assert d["muscle_sources"]["BodyParts3D"] > 300 and "deltoid" in d["muscle_sources"]["layer (reconstructed on the BodyParts3D bones)"]


def test_atlas_list_filters(capsys, atlas):
    assert main(["atlas", "list", "--kind", "muscle", "--region", "lumbar", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ids = {r["id"] for r in rows}
    assert "multifidus_L5_r" in ids and "gluteus_medius_r" not in ids
    assert all(r["kind"] == "muscle" and r["region"] == "lumbar" for r in rows)


def test_atlas_list_landmarks(capsys, atlas):
    assert main(["atlas", "list", "--landmarks"]) == 0
    out = capsys.readouterr().out
    assert "L5_spinous" in out and "psis_r" in out


def test_run_without_display_explains(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    p = subprocess.run([sys.executable, "-m", "imssim.cli", "run"], capture_output=True, text=True, env=env)
    assert p.returncode == 2  # not 3, the internal-error code
    assert "no display" in p.stderr and "xvfb-run" in p.stderr and "--screenshot" in p.stderr
