"""Progress reports: a trainee's progress and a class report, as data, plots and one HTML file.

Plots are drawn with matplotlib's Agg backend (no display) and inlined in the HTML as
base64 PNG, so a report is one self-contained file. Everything works on the light rows
of :meth:`ProgressStore.summary_rows` (no needles, no sentences), so a class report over
10,000 sessions stays well under two seconds.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import Counter, defaultdict
from datetime import datetime

FAMILIES = ("targeting", "level_accuracy", "coverage", "safety", "technique")
FAMILY_LABEL = {"targeting": "Targeting", "level_accuracy": "Level accuracy", "coverage": "Coverage",
                "safety": "Safety", "technique": "Technique"}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold",
                         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
                         "grid.alpha": 0.3, "figure.dpi": 100, "savefig.dpi": 100,
                         "figure.constrained_layout.use": False})
    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    # fixed margins (_margins) instead of a layout engine or a "tight" second draw: a third of
    # the time, which keeps a 10,000-session class report under two seconds; fast zlib level
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return buf.getvalue()


def _margins(fig, left=0.75, right=0.2, top=0.4, bottom=0.55, wspace=0.3):
    """Margins in inches (the figure's size stays what it is asked to be)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, wspace=wspace)


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# -- the data -----------------------------------------------------------------------------
def student_data(rows: list[dict]) -> dict:
    """A trainee's attempts and trends (JSON-able) from :meth:`summary_rows` rows."""
    out_rows = []
    for k, r in enumerate(rows, 1):
        out_rows.append({"attempt": k, "trainee": r["trainee"], "case": r["case_id"], "mode": r["mode"],
                         "course_session": r["course_session"], "finished_at": _iso(r["finished_at"]),
                         "total": round(r["total"], 2), "passed": bool(r["passed"]),
                         "safety_failed": bool(r["safety_failed"]), "level_error": r["level_error"],
                         "min_clearance_mm": r["min_clearance_mm"], "families": r["families"],
                         "mistakes": r["mistakes"],
                         "pain_after": ((r.get("patient") or {}).get("after") or {}).get("pain")})
    trend = {}
    for f in FAMILIES:
        v = [(x["families"] or {}).get(f) for x in out_rows]
        v = [x for x in v if x is not None]
        trend[f] = {"first": v[0] if v else None, "last": v[-1] if v else None,
                    "change": round(v[-1] - v[0], 4) if len(v) > 1 else None}
    totals = [x["total"] for x in out_rows]
    mist = Counter(m for x in out_rows for m in x["mistakes"] or [])
    return {"attempts": len(out_rows), "passed": sum(x["passed"] for x in out_rows),
            "best": max(totals) if totals else None, "last": totals[-1] if totals else None,
            "families": trend, "mistakes": dict(mist.most_common()), "courses": courses(rows), "sessions": out_rows}


def courses(rows: list[dict]) -> list[dict]:
    """Each trainee's course of each case: the patient's burden and pain per course session."""
    by = defaultdict(list)
    for r in rows:
        p = r.get("patient")
        if r.get("course_session") and p:
            by[(r["trainee"], r["case_id"])].append(r)
    out = []
    for (who, case), rs in by.items():
        # a trainee may restart a course: keep the latest run (course_session restarting at 1)
        run = []
        for r in rs:
            if r["course_session"] == 1:
                run = []
            run.append(r)
        pts = [{"session": r["course_session"], "burden_before": r["patient"]["before"].get("burden",
                _burden(r["patient"]["before"])), "burden_after": r["patient"]["after"].get("burden",
                _burden(r["patient"]["after"])), "pain_before": r["patient"]["before"].get("pain"),
                "pain_after": r["patient"]["after"].get("pain"), "resolved": r["patient"]["after"].get("resolved")}
               for r in run]
        out.append({"trainee": who, "case": case, "sessions": run[-1]["patient"].get("sessions"),
                    "expected": run[-1]["patient"].get("expected"), "points": pts})
    return out


def _burden(st: dict) -> float:
    s0 = sum(st.get("initial", {}).values())
    return sum(st.get("supersensitivity", {}).values()) / s0 if s0 else 0.0


def _iso(v):
    return v.isoformat() if isinstance(v, datetime) else v


def class_data(rows: list[dict]) -> dict:
    """The class: per trainee, common mistakes, score by attempt number (JSON-able)."""
    by = defaultdict(list)
    for r in rows:
        by[r["trainee"]].append(r)
    students = []
    for who, rs in sorted(by.items()):
        t = [r["total"] for r in rs]
        students.append({"trainee": who, "attempts": len(rs), "passed": sum(bool(r["passed"]) for r in rs),
                         "first": round(t[0], 1), "last": round(t[-1], 1), "best": round(max(t), 1),
                         "median_level_error": _median([r["level_error"] for r in rs]),
                         "safety_fails": sum(bool(r["safety_failed"]) for r in rs)})
    mist = Counter(m for r in rows for m in set(r["mistakes"] or []))
    n = len(rows)
    return {"sessions": n, "trainees": len(by), "students": students,
            "mistakes": [{"mistake": m, "sessions": c, "share": round(c / n, 4)} for m, c in mist.most_common()]}


# -- the plots ----------------------------------------------------------------------------
def _attempt_axis(ax, n):
    ax.set_xlabel("attempt")
    ax.set_xlim(0.5, max(1.5, n + 0.5))
    if n <= 20:
        ax.set_xticks(range(1, n + 1))


def fig_scores(rows, title="Score over attempts"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.4))
    cases = sorted({r["case_id"] for r in rows})
    x_all = list(range(1, len(rows) + 1))
    ax.plot(x_all, [r["total"] for r in rows], color="#999999", lw=1, zorder=1)
    for k, c in enumerate(cases):
        xs = [i for i, r in zip(x_all, rows) if r["case_id"] == c]
        ys = [r["total"] for r in rows if r["case_id"] == c]
        ok = [bool(r["passed"]) for r in rows if r["case_id"] == c]
        col = PALETTE[k % len(PALETTE)]
        if any(ok):
            ax.scatter([x for x, o in zip(xs, ok) if o], [y for y, o in zip(ys, ok) if o], color=col, s=36, zorder=3,
                       label=f"{c} (passed)")
        if not all(ok):
            ax.scatter([x for x, o in zip(xs, ok) if not o], [y for y, o in zip(ys, ok) if not o],
                       facecolors="white", edgecolors=col, s=36, lw=1.5, zorder=3, label=f"{c} (failed)")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (%)")
    _attempt_axis(ax, len(rows))
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _margins(fig)
    return fig


def fig_families(rows):
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(11, 2.6), sharey=True)
    x = list(range(1, len(rows) + 1))
    for ax, f, col in zip(axes, FAMILIES, PALETTE):
        ys = [(r["families"] or {}).get(f) for r in rows]
        pts = [(a, 100 * b) for a, b in zip(x, ys) if b is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=col, ms=3.5, lw=1.5)
        else:
            ax.text(0.5, 0.5, "not scored", ha="center", va="center", transform=ax.transAxes, color="#777")
        ax.set_title(FAMILY_LABEL[f], fontsize=10)
        ax.set_ylim(-5, 105)
        ax.set_xlabel("attempt")
        if len(rows) <= 12:
            ax.set_xticks(x)
    axes[0].set_ylabel("family score (%)")
    fig.suptitle("Each metric's trend", fontweight="bold")
    _margins(fig, left=0.7, right=0.15, top=0.65, bottom=0.55, wspace=0.12)
    return fig


def fig_level_and_clearance(rows):
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.0))
    x = list(range(1, len(rows) + 1))
    le = [(a, r["level_error"]) for a, r in zip(x, rows) if r["level_error"] is not None]
    if le:
        a1.bar([p[0] for p in le], [p[1] for p in le], color="#9467bd", width=0.6, alpha=0.6)
        a1.plot([p[0] for p in le], [p[1] for p in le], "o", color="#9467bd", ms=5)  # a 0 still shows
        if not any(p[1] for p in le):
            a1.text(0.5, 0.6, "on the segment every time", ha="center", transform=a1.transAxes, color="#555")
    else:
        a1.text(0.5, 0.5, "no paraspinal needle", ha="center", transform=a1.transAxes, color="#555")
    a1.set_title("Level error (paraspinal needles)")
    a1.set_ylabel("levels from the segment")
    a1.set_ylim(-0.15, max([p[1] for p in le] + [2]) + 0.5)
    _attempt_axis(a1, len(rows))
    cl = [(a, r["min_clearance_mm"]) for a, r in zip(x, rows) if r["min_clearance_mm"] is not None]
    if cl:
        a2.plot([p[0] for p in cl], [p[1] for p in cl], "o-", color="#2ca02c", ms=4)
    bad = [a for a, r in zip(x, rows) if r["safety_failed"]]
    for b in bad:
        a2.axvline(b, color="#d62728", lw=1, ls=":")
    a2.axhline(0, color="#d62728", lw=1)
    a2.set_title("Closest approach to danger")
    a2.set_ylabel("clearance (mm)")
    a2.set_ylim(bottom=min(0, *(p[1] for p in cl)) - 2 if cl else -2)
    _attempt_axis(a2, len(rows))
    _margins(fig, wspace=0.25)
    return fig


def fig_recovery(course_list, title="Patient recovery over the course"):
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    shown_expected = set()
    for k, c in enumerate(course_list[:8]):
        col = PALETTE[k % len(PALETTE)]
        pts = c["points"]
        xs = [p["session"] for p in pts] + [pts[-1]["session"] + 1]
        b = [100 * p["burden_before"] for p in pts] + [100 * pts[-1]["burden_after"]]
        pain = [p["pain_before"] for p in pts] + [pts[-1]["pain_after"]]
        many_t = len({x["trainee"] for x in course_list}) > 1
        many_c = len({x["case"] for x in course_list}) > 1
        lab = (f"{c['trainee']}: {c['case']}" if many_t and many_c else c["trainee"] if many_t else c["case"])
        a1.plot(xs, b, "o-", color=col, ms=4, label=lab)
        a2.plot(xs, pain, "o-", color=col, ms=4, label=lab)
        if c.get("expected") and c["case"] not in shown_expected:
            shown_expected.add(c["case"])
            e = c["expected"][: (c.get("sessions") or len(c["expected"])) + 1]
            a1.plot(range(1, len(e) + 1), [100 * v for v in e], "--", color="#555555", lw=1.2,
                    label=f"expected with good treatment ({c['case']})" if many_c else "expected with good treatment")
    a1.set_title("Supersensitivity (share of the start)")
    a1.set_ylabel("% of the first session")
    a1.set_xlabel("course session (start of)")
    a1.set_ylim(0, max(110, a1.get_ylim()[1]))
    a2.set_title("Pain score")
    a2.set_ylabel("pain (0-10)")
    a2.set_xlabel("course session (start of)")
    a2.set_ylim(0, 10.5)
    hl = a1.get_legend_handles_labels()
    fig.legend(*hl, loc="lower center", ncol=3, fontsize=9, frameon=False)
    _margins(fig, top=0.65, bottom=0.75 + 0.22 * ((len(hl[1]) + 2) // 3), wspace=0.25)
    fig.suptitle(title, fontweight="bold")
    return fig


def course_muscles(rows: list[dict]) -> dict | None:
    """The muscles of the latest course run in ``rows`` (one trainee): each supersensitive
    muscle's value at the start of each course session and after the last one.

    ``{"trainee", "case", "sessions", "resolved_below", "x": [session...], "muscles": {id: [value...]}}``
    (None: no course in ``rows``)."""
    crs = [r for r in rows if r.get("course_session") and (r.get("patient") or {}).get("before")
           and r["patient"].get("after")]
    if not crs:
        return None
    key = (crs[-1]["trainee"], crs[-1]["case_id"])  # the latest course
    by: dict = {}
    for r in crs:
        if (r["trainee"], r["case_id"]) != key:
            continue
        if r["course_session"] == 1:
            by = {}  # the course started again
        by[r["course_session"]] = r  # a session attempted again: its latest attempt
    run = [by[k] for k in sorted(by)]
    ids = list(run[0]["patient"]["before"].get("supersensitivity", {}))
    x = [r["course_session"] for r in run] + [run[-1]["course_session"] + 1]
    states = [r["patient"]["before"] for r in run] + [run[-1]["patient"]["after"]]
    return {"trainee": key[0], "case": key[1], "sessions": run[-1]["patient"].get("sessions"),
            "resolved_below": run[-1]["patient"]["after"].get("resolved_below", 0.2), "x": x,
            "muscles": {m: [float(st.get("supersensitivity", {}).get(m, float("nan"))) for st in states] for m in ids}}


def fig_muscles(data: dict, names: dict | None = None):
    """Per muscle release over the course: each supersensitive muscle's supersensitivity at the
    start of each session (from :func:`course_muscles`), with the 'resolved' line."""
    plt = _plt()
    n = len(data["muscles"])
    fig, ax = plt.subplots(figsize=(8, 3.4 + 0.22 * ((n + 1) // 2)))
    styles = ["-", "--", "-.", ":"]
    markers = ["o", "s", "^", "D", "v"]
    for k, (m, ys) in enumerate(sorted(data["muscles"].items(), key=lambda kv: -kv[1][0])):
        # marker and dash vary too: two muscles on the same values both stay visible
        ax.plot(data["x"], ys, marker=markers[k % len(markers)], ms=4, lw=1.5, color=PALETTE[k % len(PALETTE)],
                ls=styles[k % len(styles)], label=(names or {}).get(m, m))
    rb = data.get("resolved_below") or 0.2
    ax.axhline(rb, color="#2ca02c", lw=1, ls=":")
    ax.text(data["x"][0], rb, " resolved below this", va="bottom", fontsize=8, color="#2ca02c")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("supersensitivity (0-1)")
    ax.set_xlabel("course session (start of)")
    ax.set_xticks(data["x"])
    ax.set_title(f"Each muscle's release over the course ({data['case']})")
    hl = ax.get_legend_handles_labels()
    fig.legend(*hl, loc="lower center", ncol=2, fontsize=8, frameon=False)
    _margins(fig, bottom=0.75 + 0.2 * ((len(hl[1]) + 1) // 2))
    return fig


def fig_class_recovery(course_list):
    """Each case's patients across the class: median supersensitivity and pain per course session."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    by_case = defaultdict(list)
    for c in course_list:
        by_case[c["case"]].append(c)
    for k, (case, cs) in enumerate(sorted(by_case.items())):
        col = PALETTE[k % len(PALETTE)]
        for ax, key, scale in ((a1, "burden", 100.0), (a2, "pain", 1.0)):
            per = defaultdict(list)
            for c in cs:
                for p in c["points"]:
                    per[p["session"]].append(scale * p[f"{key}_before"])
                last = c["points"][-1]
                per[last["session"] + 1].append(scale * last[f"{key}_after"])
            xs = sorted(x for x in per if len(per[x]) >= 2)
            if not xs:
                continue
            q = [statistics.quantiles(per[x], n=4) for x in xs]
            ax.fill_between(xs, [v[0] for v in q], [v[2] for v in q], color=col, alpha=0.2, lw=0)
            ax.plot(xs, [statistics.median(per[x]) for x in xs], "o-", color=col, ms=4,
                    label=f"{case}: median and middle half ({len(cs)} courses)")
        e = cs[-1].get("expected")
        if e:
            e = e[: (cs[-1].get("sessions") or len(e)) + 1]
            a1.plot(range(1, len(e) + 1), [100 * v for v in e], "--", color=col, lw=1.2,
                    label=f"{case}: expected with good treatment")
    a1.set_title("Supersensitivity (share of the start)")
    a1.set_ylabel("% of the first session")
    a1.set_ylim(bottom=0)
    a2.set_title("Pain score")
    a2.set_ylabel("pain (0-10)")
    a2.set_ylim(0, 10.5)
    for ax in (a1, a2):
        ax.set_xlabel("course session (start of)")
    hl = a1.get_legend_handles_labels()
    fig.legend(*hl, loc="lower center", ncol=2, fontsize=9, frameon=False)
    _margins(fig, top=0.65, bottom=0.75 + 0.22 * ((len(hl[1]) + 1) // 2), wspace=0.25)
    fig.suptitle("Patients' recovery over the course, across the class", fontweight="bold")
    return fig


def fig_class_scores(rows):
    """Score by attempt number across the class: median and the middle half, every trainee faint."""
    plt = _plt()
    by = defaultdict(list)
    for r in rows:
        by[r["trainee"]].append(r["total"])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    n = max((len(v) for v in by.values()), default=0)
    if len(by) <= 60:
        for v in by.values():
            ax.plot(range(1, len(v) + 1), v, color="#1f77b4", alpha=0.15, lw=1)
    med, q1, q3, xs = [], [], [], []
    for k in range(n):
        col = sorted(v[k] for v in by.values() if len(v) > k)
        if len(col) < 2:
            continue
        qs = statistics.quantiles(col, n=4)
        xs.append(k + 1)
        q1.append(qs[0])
        med.append(statistics.median(col))
        q3.append(qs[2])
    if xs:
        ax.fill_between(xs, q1, q3, color="#1f77b4", alpha=0.25, lw=0, label="middle half of the class")
        ax.plot(xs, med, color="#1f77b4", lw=2.2, label="median")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (%)")
    _attempt_axis(ax, n)
    ax.set_title(f"Class score by attempt ({len(by)} trainees, {len(rows)} sessions)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    _margins(fig)
    return fig


def fig_mistakes(mistakes, total):
    plt = _plt()
    items = mistakes[:10][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(3, len(items)) + 0.8))
    if items:
        share = [100 * m["share"] for m in items]
        ax.barh([m["mistake"] for m in items], share, color="#d62728", alpha=0.8)
        for y, s in enumerate(share):
            ax.text(s + 1, y, f"{s:.0f}%", va="center", fontsize=9)
        ax.set_xlim(0, max(share) * 1.15 + 5)
    else:
        ax.text(0.5, 0.5, "no mistakes recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"share of sessions (of {total})")
    ax.set_title("Common mistakes across the class")
    ax.grid(axis="y", visible=False)
    _margins(fig, left=3.0, right=0.3, top=0.4, bottom=0.55)
    return fig


def fig_class_safety(rows):
    """Level error and danger clearance by attempt number: class medians."""
    plt = _plt()
    by = defaultdict(list)
    for r in rows:
        by[r["trainee"]].append(r)
    n = max((len(v) for v in by.values()), default=0)
    xs, le, cl, sf = [], [], [], []
    for k in range(n):
        col = [v[k] for v in by.values() if len(v) > k]
        xs.append(k + 1)
        le.append(_median([r["level_error"] for r in col]))
        cl.append(_median([r["min_clearance_mm"] for r in col]))
        sf.append(100 * sum(bool(r["safety_failed"]) for r in col) / len(col))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.0))
    a1.plot(xs, [v if v is not None else float("nan") for v in le], "o-", color="#9467bd", ms=3)
    a1.set_title("Median level error")
    a1.set_ylabel("levels")
    a1.set_ylim(bottom=0)
    _attempt_axis(a1, n)
    a2.plot(xs, [v if v is not None else float("nan") for v in cl], "o-", color="#2ca02c", ms=3,
            label="median clearance (mm)")
    a2.set_ylabel("clearance (mm)")
    a3 = a2.twinx()
    a3.bar(xs, sf, color="#d62728", alpha=0.25, width=0.7, label="safety fails (%)")
    a3.set_ylabel("safety fails (%)", color="#d62728")
    a3.set_ylim(0, max([10.0] + [1.3 * v for v in sf]))
    a3.grid(False)
    a2.set_title("Danger clearance and safety fails")
    _attempt_axis(a2, n)
    _margins(fig, right=0.75, wspace=0.3)
    return fig


# -- HTML ---------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;margin-top:0}table{border-collapse:collapse;font-size:.92em;margin:.6em 0}
td,th{border-bottom:1px solid #eee;padding:.3em .7em;text-align:left}th{background:#f6f6f6}
td.n{text-align:right;font-variant-numeric:tabular-nums}.pass{color:#2ca02c;font-weight:600}.fail{color:#d62728;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{color:#666;font-size:.9em}
"""


def _img(title: str, png: bytes) -> str:
    b = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>")


def _page(title: str, sub: str, body: list[str]) -> str:
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(sub)}</p>" + "\n".join(body) + "</body></html>")


def student_figures(rows, names: dict | None = None) -> list[tuple[str, bytes]]:
    """A trainee's plots as (title, PNG): the HTML report's and the window's Progress tab's.
    ``names``: structure id -> name for the per-muscle plot (ids without it)."""
    figs = [("Score over attempts", _png(fig_scores(rows))), ("Each metric's trend", _png(fig_families(rows))),
            ("Level error and danger clearance over time", _png(fig_level_and_clearance(rows)))]
    cs = courses(rows)
    if cs:
        figs.append(("The course's patient recovery curve", _png(fig_recovery(cs))))
    cm = course_muscles(rows)
    if cm is not None and cm["muscles"]:
        figs.append(("Each muscle's release over the course", _png(fig_muscles(cm, names))))
    return figs


def student_html(rows, who: str | None, case: str | None = None, figures=None) -> str:
    d = student_data(rows)
    figs = figures if figures is not None else (student_figures(rows) if rows else [])
    sub = (f"{d['attempts']} session(s), {d['passed']} passed" + (f"; case {case}" if case else "")
           + f"; generated {datetime.now().strftime('%Y-%m-%d %H:%M')}")
    body = ["<h2>Plots</h2>"] + [_img(t, p) for t, p in figs] if figs else ["<p>No sessions saved yet.</p>"]
    body.append("<h2>Sessions</h2><table><tr><th>#</th><th>case</th><th>mode</th><th>course session</th>"
                "<th>finished</th><th>score</th><th>result</th><th>level error</th><th>clearance (mm)</th>"
                "<th>mistakes</th></tr>")
    for s in d["sessions"]:
        res = "<span class='pass'>pass</span>" if s["passed"] else "<span class='fail'>fail</span>"
        le = "" if s["level_error"] is None else f"{s['level_error']:g}"
        cl = "" if s["min_clearance_mm"] is None else f"{s['min_clearance_mm']:.0f}"
        body.append(f"<tr><td class='n'>{s['attempt']}</td><td>{html.escape(s['case'])}</td><td>{s['mode']}</td>"
                    f"<td class='n'>{s['course_session'] or ''}</td><td>{html.escape(str(s['finished_at'])[:16])}</td>"
                    f"<td class='n'>{s['total']:.0f}%</td><td>{res}</td>"
                    f"<td class='n'>{le}</td><td class='n'>{cl}</td>"
                    f"<td>{html.escape('; '.join(s['mistakes'] or []))}</td></tr>")
    body.append("</table>")
    return _page(f"imssim progress: {who or 'all trainees'}", sub, body)


def class_figures(rows, cdata=None) -> list[tuple[str, bytes]]:
    cdata = cdata or class_data(rows)
    figs = [("Class score by attempt", _png(fig_class_scores(rows))),
            ("Level error and danger clearance over time", _png(fig_class_safety(rows))),
            ("Common mistakes across the class", _png(fig_mistakes(cdata["mistakes"], cdata["sessions"])))]
    cs = courses(rows)
    if cs:
        fig = fig_recovery(cs) if len(cs) <= 8 else fig_class_recovery(cs)
        figs.append(("The course's patient recovery curve", _png(fig)))
    return figs


def class_html(rows, case: str | None = None) -> str:
    cdata = class_data(rows)
    figs = class_figures(rows, cdata) if rows else []
    sub = (f"{cdata['trainees']} trainee(s), {cdata['sessions']} session(s)" + (f"; case {case}" if case else "")
           + f"; generated {datetime.now().strftime('%Y-%m-%d %H:%M')}")
    body = ["<h2>Plots</h2>"] + [_img(t, p) for t, p in figs] if figs else ["<p>No sessions saved yet.</p>"]
    body.append("<h2>Trainees</h2><table><tr><th>trainee</th><th>attempts</th><th>passed</th><th>first</th>"
                "<th>last</th><th>best</th><th>median level error</th><th>safety fails</th></tr>")
    for s in cdata["students"]:
        mle = "" if s["median_level_error"] is None else f"{s['median_level_error']:g}"
        body.append(f"<tr><td>{html.escape(s['trainee'])}</td><td class='n'>{s['attempts']}</td>"
                    f"<td class='n'>{s['passed']}</td><td class='n'>{s['first']:.0f}%</td>"
                    f"<td class='n'>{s['last']:.0f}%</td><td class='n'>{s['best']:.0f}%</td>"
                    f"<td class='n'>{mle}</td><td class='n'>{s['safety_fails']}</td></tr>")
    body.append("</table><h2>Common mistakes</h2><table><tr><th>mistake</th><th>sessions</th><th>share</th></tr>")
    for m in cdata["mistakes"]:
        body.append(f"<tr><td>{html.escape(m['mistake'])}</td><td class='n'>{m['sessions']}</td>"
                    f"<td class='n'>{100 * m['share']:.0f}%</td></tr>")
    body.append("</table>")
    return _page("imssim class report", sub, body)
