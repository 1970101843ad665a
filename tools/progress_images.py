"""Regenerate docs/img/progress-report.png and progress-class-report.png: the reports' pages.

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
    from imssim.core.model import store as atlas_store
    from imssim.core.training.progress import ProgressStore, course_state_for, save_finished
    from imssim.core.training.progress import report as rp
    from imssim.core.training.scenario import derive_targets, load_scenario
    from imssim.core.training.session import Session
    from imssim.core.engines.traversal import TissueIndex

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
    ann = st.summary_rows("ann")
    figs = rp.student_figures(ann)[:3]
    both = rp.fig_recovery(rp.courses(st.summary_rows()),
                           "The course's patient recovery: good treatment (ann) vs wrong segment (bob)")
    figs.append(("The course's patient recovery curve", rp._png(both)))
    (tmp / "ann.html").write_text(rp.student_html(ann, "ann"))
    files.append(_sheet(out / "progress-report.png", "imssim progress: ann",
                        f"{len(ann)} sessions of the {sc.id} course", figs))
    c = ProgressStore(f"sqlite:///{tmp / 'class.sqlite'}")
    bulk_load(c, make_records(400, 40, seed=5))
    crow = c.summary_rows()
    (tmp / "class.html").write_text(rp.class_html(crow))
    files.append(_sheet(out / "progress-class-report.png", "imssim class report",
                        "40 trainees, 400 sessions (synthetic class: benchmarks/bench_progress.py)",
                        rp.class_figures(crow)))
    print("\n".join(map(str, files)))
    print(f"reports: {tmp / 'ann.html'} {tmp / 'class.html'}")
    return files


def _sheet(path: Path, title: str, sub: str, figs) -> Path:
    """The report as a page: its heading and its plots, one under the other (what a browser shows)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    ims = [Image.open(io.BytesIO(png)).convert("RGB") for _, png in figs]
    w = max(i.width for i in ims) + 40
    head = 90
    h = head + sum(i.height + 40 for i in ims)
    page = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(page)
    try:
        import matplotlib.font_manager as fm

        big = ImageFont.truetype(fm.findfont("DejaVu Sans:bold"), 30)
        small = ImageFont.truetype(fm.findfont("DejaVu Sans"), 17)
    except Exception:
        big = small = ImageFont.load_default()
    d.text((20, 15), title, fill="#222222", font=big)
    d.text((20, 58), sub, fill="#666666", font=small)
    y = head
    for (cap, _), im in zip(figs, ims):
        page.paste(im, (20, y))
        d.text((20, y + im.height + 6), cap, fill="#666666", font=small)
        y += im.height + 40
    page.save(path, optimize=True)
    return path


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img")
