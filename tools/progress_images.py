"""Regenerate docs/img/progress-*.png: the report plots of a real course and a class.

Run:  PYTHONPATH=src:tests python tools/progress_images.py [OUT_DIR]   (default docs/img)

'ann' runs the default case's course well (every trigger locus needled and pistoned), 'bob'
needles the wrong segment (the targets of L3 instead of L5); the class plots use
benchmarks/bench_progress.py's synthetic class of 40 trainees.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benchmarks")]


def main(out: Path) -> list[Path]:
    from imssim.core import store as atlas_store
    from imssim.core.progress import ProgressStore, course_state_for, save_finished
    from imssim.core.progress import report as rp
    from imssim.core.scenario import derive_targets, load_scenario
    from imssim.core.session import Session
    from imssim.core.traversal import TissueIndex

    from bench_progress import bulk_load, make_records
    from progress_helpers import treat_targets, treat_well

    tmp = Path(tempfile.mkdtemp(prefix="imssim-progress-img-"))
    os.environ["IMSSIM_DATA_DIR"] = str(tmp)
    atlas = atlas_store.load_builtin()
    index = TissueIndex(atlas)
    sc = load_scenario("l5-radiculopathy-low-back", atlas)
    wrong = sc.model_copy(update={"diagnosis": sc.diagnosis.model_copy(update={"segments": ["L3"]})})
    wrong_targets = [t.structure for t in derive_targets(wrong, atlas)][:6]
    st = ProgressStore(f"sqlite:///{tmp / 'p.sqlite'}")
    for who in ("ann", "bob"):
        for k in range(sc.course.sessions):
            state = course_state_for(st, sc, who, atlas)
            s = Session(atlas, sc, seed=k, index=index, patient_state=state)
            treat_well(s) if who == "ann" else treat_targets(s, wrong_targets)
            save_finished(s, who, store=st, scenario=sc, state=state, atlas=atlas)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    rows = st.summary_rows()
    for who in ("ann", "bob"):
        for name, (title, png) in zip(["scores", "families", "level-clearance", "recovery"],
                                      rp.student_figures(st.summary_rows(who))):
            p = out / f"progress-{who}-{name}.png"
            p.write_bytes(png)
            files.append(p)
    (tmp / "ann.html").write_text(rp.student_html(st.summary_rows("ann"), "ann"))
    c = ProgressStore(f"sqlite:///{tmp / 'class.sqlite'}")
    bulk_load(c, make_records(400, 40, seed=5))
    crow = c.summary_rows()
    for name, (title, png) in zip(["class-scores", "class-safety", "class-mistakes", "class-recovery"],
                                  rp.class_figures(crow)):
        p = out / f"progress-{name}.png"
        p.write_bytes(png)
        files.append(p)
    (tmp / "class.html").write_text(rp.class_html(crow))
    recovery = rp.fig_recovery(rp.courses(rows), "Patient recovery: good treatment (ann) vs wrong segment (bob)")
    p = out / "progress-recovery-compare.png"
    p.write_bytes(rp._png(recovery))
    files.append(p)
    print("\n".join(map(str, files)))
    print(f"reports: {tmp / 'ann.html'} {tmp / 'class.html'}")
    return files


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img")
