"""Progress store and reports speed (issue 17).

Run:  PYTHONPATH=src python benchmarks/bench_progress.py [SESSIONS]   (default 10,000)

Goals (docs/performance.md): saving one session < 50 ms on SQLite; a class report over
10,000 sessions < 2 s. The naive way for comparison, in the same run:
* saving: a new store (engine + migration check) and a default-journal SQLite connection
  per session, as a script that "just opens the database and writes" would;
* class report: every full session row with its needles (``sessions(with_needles=True)``,
  the breakdown text and all) loaded and then reported.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

CASES = ["l5-radiculopathy-low-back", "s1-radiculopathy-piriformis", "c5-c6-neck-pain"]
MISTAKES = ["paraspinal needle at the wrong level", "needle off target", "missed the peripheral objective",
            "treated the symptom site only", "entered a danger structure", "wrong segment call"]


def make_records(n_sessions: int, n_trainees: int | None = None, seed: int = 0, needles: int = 6):
    """Synthetic sessions of a class: each trainee improves over attempts, with noise; the
    course cases carry a patient that recovers when the score is good."""
    from imssim.core.training.progress import SessionRecord

    rng = random.Random(seed)
    n_trainees = n_trainees or max(1, n_sessions // 20)
    per = [n_sessions // n_trainees + (1 if k < n_sessions % n_trainees else 0) for k in range(n_trainees)]
    out = []
    t0 = 1_780_000_000.0
    for k, n in enumerate(per):
        who = f"trainee-{k + 1:03d}"
        skill = rng.uniform(0.25, 0.6)
        learn = rng.uniform(0.04, 0.12)
        burden = 1.0
        for a in range(n):
            case = CASES[0] if a < 8 else rng.choice(CASES)
            s = min(1.0, skill + learn * a + rng.gauss(0, 0.07))
            fam = {"targeting": min(1, max(0, s + rng.gauss(0, .08))), "level_accuracy": min(1, max(0, s + .1)),
                   "coverage": min(1, max(0, s - .1 + rng.gauss(0, .1))), "safety": 1.0 if rng.random() > .08 * (1 - s)
                   else 0.0, "technique": min(1, max(0, .6 + .3 * s))}
            total = 100 * (0.3 * fam["targeting"] + 0.2 * fam["level_accuracy"] + 0.2 * fam["coverage"]
                           + 0.2 * fam["safety"] + 0.1 * fam["technique"])
            safety_failed = fam["safety"] == 0.0
            passed = total >= 70 and not safety_failed
            mist = [m for m in MISTAKES if rng.random() < 0.5 * (1 - s)]
            if safety_failed:
                mist.append("entered a danger structure")
            patient = None
            cs = None
            if case == CASES[0] and a < 8:
                cs = a + 1
                before = burden
                burden = max(0.0, burden * (0.72 if passed else 1.02))
                patient = {"before": {"burden": round(before, 4), "pain": round(7 * before)},
                           "after": {"burden": round(burden, 4), "pain": round(7 * burden), "resolved": burden < 0.22,
                                     "session": cs + 1},
                           "expected": [round(0.79 ** i, 4) for i in range(9)], "sessions": 8}
            out.append(SessionRecord(
                trainee=who, case_id=case, mode="practice" if a % 5 else "exam", total=round(total, 2),
                passed=passed, safety_failed=safety_failed, families={f: round(v, 4) for f, v in fam.items()},
                breakdown={f: {"value": round(100 * v, 1), "score": v, "family": f, "sentence": "x" * 120}
                           for f, v in fam.items()},
                events={"twitch": rng.randint(0, 8), "grasp": rng.randint(0, 6)}, mistakes=sorted(set(mist)),
                needles=[{"number": j + 1, "structure": f"muscle_{j}", "target": rng.random() < s,
                          "level_error": rng.choice([0, 0, 0, 1, 2]), "sentence": "Needle is in the ..." * 3}
                         for j in range(needles)],
                level_error=float(rng.choice([0, 0, 0, 1, 2] if s > .5 else [0, 1, 1, 2, 3])),
                min_clearance_mm=round(max(0.0, rng.gauss(8 + 10 * s, 4)), 1), course_session=cs, patient=patient,
                duration_s=rng.uniform(300, 1200),
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 + 86400 * a + 60 * k))))
    out.sort(key=lambda r: r.finished_at)
    return out


def bulk_load(store, recs):
    """Fill a store quickly (one transaction per 1000) for the report benchmark."""
    from datetime import datetime

    from imssim.core.training.progress.schema import needles, sessions

    with store.engine.begin() as conn:
        ids = {}
        for r in recs:
            if r.trainee not in ids:
                ids[r.trainee] = store._trainee_id(conn, r.trainee)
    for i in range(0, len(recs), 1000):
        chunk = recs[i:i + 1000]
        with store.engine.begin() as conn:
            for r in chunk:
                sid = conn.execute(sessions.insert().values(
                    uid=r.uid, trainee_id=ids[r.trainee], case_id=r.case_id, mode=r.mode,
                    course_session=r.course_session, finished_at=datetime.fromisoformat(r.finished_at),
                    duration_s=r.duration_s, total=r.total, passed=r.passed, safety_failed=r.safety_failed,
                    level_error=r.level_error, min_clearance_mm=r.min_clearance_mm, families=r.families,
                    breakdown=r.breakdown, events=r.events, mistakes=r.mistakes, patient=r.patient,
                    needle_count=len(r.needles), recording_path=None, recording_sha256=None,
                    imssim_version=None)).inserted_primary_key[0]
                conn.execute(needles.insert(), [{"session_id": sid, **n} for n in r.needles])


def naive_save(path, rec):
    """A save as a one-off script would do it: open everything, write, close."""
    from imssim.core.training.progress import ProgressStore

    s = ProgressStore(f"sqlite:///{path}", retry_pending=False)
    s.save(rec)
    s.close()


def main(n: int = 10_000) -> dict:
    from imssim.core.training.progress import ProgressStore
    from imssim.core.training.progress import report as rp

    tmp = Path(tempfile.mkdtemp(prefix="imssim-bench-progress-"))
    os.environ.setdefault("IMSSIM_DATA_DIR", str(tmp / "data"))
    # -- saving -------------------------------------------------------------------------
    recs = make_records(200, 10, seed=1)
    store = ProgressStore(f"sqlite:///{tmp / 'save.sqlite'}")
    times = []
    for r in recs:
        t = time.perf_counter()
        store.save(r)
        times.append(time.perf_counter() - t)
    store.close()
    times.sort()
    save_med, save_p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
    naive = []
    for r in make_records(20, 2, seed=2):
        t = time.perf_counter()
        naive_save(tmp / "naive.sqlite", r)
        naive.append(time.perf_counter() - t)
    naive.sort()
    naive_med = naive[len(naive) // 2]
    print(f"save one session (SQLite): median {1000 * save_med:.1f} ms, p95 {1000 * save_p95:.1f} ms "
          f"(goal < 50 ms); naive open-write-close {1000 * naive_med:.1f} ms ({naive_med / save_med:.0f}x slower)")
    # -- the class report ---------------------------------------------------------------
    store = ProgressStore(f"sqlite:///{tmp / 'class.sqlite'}")
    t = time.perf_counter()
    bulk_load(store, make_records(n, seed=3))
    print(f"(filled {n} sessions in {time.perf_counter() - t:.1f} s)")
    t = time.perf_counter()
    rp._plt()  # matplotlib's import: once per process (a CLI run pays it once, the window at start)
    t_import = time.perf_counter() - t
    t = time.perf_counter()
    rows = store.summary_rows()
    t_q = time.perf_counter() - t
    html = rp.class_html(rows)
    t_report = time.perf_counter() - t
    (tmp / "class.html").write_text(html)
    t = time.perf_counter()
    full = store.sessions(with_needles=True)
    html2 = rp.class_html(full)
    t_naive = time.perf_counter() - t
    assert html2.count("data:image/png") == html.count("data:image/png")
    print(f"class report over {len(rows)} sessions: {t_report:.2f} s (query {t_q:.2f} s) (goal < 2 s); "
          f"naive (every full row with its needles) {t_naive:.2f} s ({t_naive / t_report:.1f}x slower); "
          f"{tmp / 'class.html'}")
    print(f"(plus matplotlib's import, once per process: {t_import:.2f} s; machine load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")
    store.close()
    return {"save_ms": 1000 * save_med, "save_p95_ms": 1000 * save_p95, "naive_save_ms": 1000 * naive_med,
            "report_s": t_report, "naive_report_s": t_naive, "import_s": t_import}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
