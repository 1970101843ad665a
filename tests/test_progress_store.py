"""Issue 17, the progress store: migrations, transactional saves, killed writers, 30 concurrent
writers, a database that is down (SQLite and PostgreSQL; see progress_helpers.db_url)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imssim.core.training.progress import ProgressStore, ProgressUnavailable, SessionRecord, pending_dir

from progress_helpers import db_url, fresh_db_url, pg_admin_url  # noqa: F401  (fixture)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "progress_worker.py"


def _rec(trainee="ann", needles=3, **kw) -> SessionRecord:
    base = dict(trainee=trainee, case_id="l5-radiculopathy-low-back", mode="practice", total=72.5, passed=True,
                safety_failed=False, families={"targeting": 1.0, "coverage": 0.5, "technique": None},
                breakdown={"level_error": {"value": 1, "score": 0.5, "family": "level_accuracy", "sentence": "s"}},
                events={"twitch": 3, "grasp": 2}, mistakes=["paraspinal needle at the wrong level"],
                needles=[{"number": i + 1, "structure": f"m{i}", "target": i == 0, "level_error": i, "sentence": "n"}
                         for i in range(needles)],
                level_error=1.0, min_clearance_mm=12.5, course_session=2,
                patient={"before": {"pain": 7}, "after": {"session": 3, "pain": 5}}, duration_s=300.0)
    base.update(kw)
    return SessionRecord(**base)


def _env():
    env = dict(os.environ)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, str(HERE), env.get("PYTHONPATH", "")])
    return env


def _consistent(store):
    """Every session row has exactly its needle rows (no half records)."""
    rows = store.sessions(with_needles=True)
    for r in rows:
        assert len(r["needles"]) == r["needle_count"], r["uid"]
    return rows


def test_migrations_build_the_schema_the_code_expects(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from imssim.core.training.progress.schema import metadata

    with ProgressStore(db_url) as s:
        assert s.revision() == "0001"
        with s.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"schema.py and the migrations differ: {diff}"
    with ProgressStore(db_url) as s:  # opening again migrates nothing
        assert s.revision() == "0001"


def test_save_reads_back_every_field_and_a_retry_is_idempotent(db_url):
    with ProgressStore(db_url) as s:
        rec = _rec()
        sid = s.save(rec)
        assert s.save(rec) == sid  # the same uid again: no duplicate
        rows = s.sessions(student="ann", with_needles=True)
        assert len(rows) == 1
        r = rows[0]
        assert (r["trainee"], r["case_id"], r["mode"], r["course_session"]) == ("ann", rec.case_id, "practice", 2)
        assert r["total"] == 72.5 and r["passed"] is True and r["level_error"] == 1.0
        assert r["families"]["technique"] is None and r["events"] == {"twitch": 3, "grasp": 2}
        assert [n["structure"] for n in r["needles"]] == ["m0", "m1", "m2"]
        assert s.last_patient("ann", rec.case_id) == {"session": 3, "pain": 5}
        assert s.sessions(student="bob") == []


def test_trainees_and_the_instructor_role(db_url):
    with ProgressStore(db_url) as s:
        s.save(_rec("ann"))
        s.save(_rec("bob"))
        s.add_trainee("dr who", "instructor")
        assert s.role_of("dr who") == "instructor" and s.role_of("ann") == "trainee" and s.role_of("nobody") is None
        assert {t["name"]: t["sessions"] for t in s.trainees()} == {"ann": 1, "bob": 1, "dr who": 0}


def test_a_killed_writer_leaves_the_database_readable_and_consistent(db_url):
    with ProgressStore(db_url):
        pass  # migrated
    p = subprocess.Popen([sys.executable, str(WORKER), db_url, "killed", "100000", "40"], env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed = []
    try:
        while len(committed) < 25:
            line = p.stdout.readline()
            assert line, f"the writer died: {p.stderr.read()}"
            committed.append(line.strip())
        os.kill(p.pid, signal.SIGKILL)  # mid-way through the next save
    finally:
        p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL
    with ProgressStore(db_url) as s:
        if s.dialect == "sqlite":
            with s.engine.connect() as c:
                assert c.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        rows = _consistent(s)
        uids = {r["uid"] for r in rows}
        assert set(committed) <= uids  # every commit the writer reported is there
        assert len(rows) >= 25
        s.save(_rec("after"))  # and it still takes writes
        assert len(s.sessions()) == len(rows) + 1


def _many_writers(url, n_proc, per_proc, tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, str(WORKER), url, f"student-{k % 10:02d}", str(per_proc), "5", str(go)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(n_proc)]
    time.sleep(1.0)
    go.write_text("go")
    uids, errs = set(), []
    for p in procs:
        out, err = p.communicate(timeout=300)
        if p.returncode != 0:
            errs.append(err[-2000:])
        uids |= set(out.split())
    assert not errs, errs[0]
    return uids


def test_30_concurrent_writers_into_one_postgresql_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    url, drop = fresh_db_url("postgresql", tmp_path)  # a fresh database: the 30 race to migrate it too
    try:
        uids = _many_writers(url, 30, 10, tmp_path)
        assert len(uids) == 300
        with ProgressStore(url) as s:
            rows = _consistent(s)
            assert {r["uid"] for r in rows} == uids
            assert sorted(t["name"] for t in s.trainees()) == [f"student-{k:02d}" for k in range(10)]
            assert s.revision() == "0001"
    finally:
        drop()


def test_concurrent_writers_into_one_sqlite_file_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'class.sqlite'}"
    uids = _many_writers(url, 8, 10, tmp_path)
    with ProgressStore(url) as s:
        assert {r["uid"] for r in _consistent(s)} == uids and len(uids) == 80


def test_a_server_that_is_down_gives_one_line_naming_the_masked_url(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    url = "postgresql://teacher:s3cret@127.0.0.1:9/class"
    with pytest.raises(ProgressUnavailable) as e:
        ProgressStore(url)
    msg = str(e.value)
    assert "\n" not in msg and "postgresql://teacher:***@127.0.0.1:9/class" in msg and "s3cret" not in msg
    s = ProgressStore(url, migrate=False, retry_pending=False)
    rec = _rec()
    with pytest.raises(ProgressUnavailable) as e:
        s.save(rec)
    kept = pending_dir() / f"{rec.uid}.json"
    assert kept.is_file() and str(kept) in str(e.value) and "s3cret" not in kept.read_text()
    assert json.loads(kept.read_text())["record"]["uid"] == rec.uid


def test_a_session_kept_while_the_database_was_down_is_saved_next_time(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "p.sqlite"
    url = f"sqlite:///{db}"
    ProgressStore(url).close()
    aside = tmp_path / "aside.sqlite"
    shutil.move(db, aside)
    db.mkdir()  # the database "file" cannot be opened: as if the disk/share were gone
    rec = _rec("carol")
    s = ProgressStore(url, migrate=False, retry_pending=False)
    with pytest.raises(ProgressUnavailable, match="will be saved next time"):
        s.save(rec)
    s.close()
    assert (pending_dir() / f"{rec.uid}.json").is_file()
    db.rmdir()
    shutil.move(aside, db)
    with ProgressStore(url) as s:  # opening retries what was kept
        assert [r["uid"] for r in s.sessions(student="carol")] == [rec.uid]
    assert not (pending_dir() / f"{rec.uid}.json").exists()


def test_ci_starts_and_stops_a_postgresql_server_for_these_tests():
    ci = (HERE.parent / ".ci" / "run").read_text()
    lines = ci.splitlines()
    assert "postgresql" in ci.split("apt-get install", 1)[1].split("\n\n", 1)[0]  # the Debian package
    start = lines.index("pg_start")
    assert lines.index("trap pg_stop EXIT") == start + 1 and ". .ci/postgres.sh" in lines[:start]
    assert start < next(i for i, x in enumerate(lines) if "python -m pytest" in x)
    pg = (HERE.parent / ".ci" / "postgres.sh").read_text()
    assert "export IMSSIM_TEST_PG_URL=" in pg and "pg_ctl" in pg
    r = subprocess.run(["bash", "-n", str(HERE.parent / ".ci" / "run")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_long_report_query_on_sqlite_does_not_block_a_trainee_saving(tmp_path, monkeypatch):
    from sqlalchemy import text

    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    with ProgressStore(url) as reader, ProgressStore(url) as writer:
        writer.save(_rec("ann"))
        with reader._read() as conn:  # an open read transaction (a report being drawn)
            assert conn.execute(text("SELECT count(*) FROM sessions")).scalar() == 1
            t = time.perf_counter()
            writer.save(_rec("bob"))
            assert time.perf_counter() - t < 5.0
            assert conn.execute(text("SELECT count(*) FROM sessions")).scalar() == 1  # its snapshot
        assert len(reader.sessions()) == 2
