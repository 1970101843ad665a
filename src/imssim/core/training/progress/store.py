"""The progress store: every finished session, in SQLite (default) or a class's PostgreSQL.

* Where: ``IMSSIM_DB_URL``, else ``progress_db_url`` in imssim's settings.json (in
  ``IMSSIM_CONFIG_DIR``), else ``sqlite:///<data folder>/progress.sqlite`` where the data
  folder is ``IMSSIM_DATA_DIR`` or the platform's user data folder.
* The schema is created and upgraded by the Alembic migrations shipped in
  ``migrations/`` when the store opens (under a lock, so a class opening at once is fine).
* A save is one transaction (the session row and its needle rows, or nothing). A
  database that cannot be reached raises :class:`ProgressUnavailable` (one line, the URL
  with its password masked) after the record is written to a pending file; the next
  store opened on the same URL saves pending records first (idempotent: by ``uid``).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from .record import SessionRecord

ROLES = ("trainee", "instructor")
_SETTINGS_KEY = "progress_db_url"
_LOCK_ID = 17_170_017  # pg advisory lock: one migrator at a time


class ProgressError(RuntimeError):
    """A progress-store call that cannot be carried out (one line, says why)."""


class ProgressUnavailable(ProgressError):
    """The database cannot be reached; the record (if any) was kept in a pending file."""


def data_dir() -> Path:
    env = os.environ.get("IMSSIM_DATA_DIR")
    if env:
        p = Path(env)
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir("imssim", appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def _config_dir() -> Path:
    env = os.environ.get("IMSSIM_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("imssim", appauthor=False))


def configured_url() -> str:
    """The database URL imssim uses (see the module's docstring)."""
    url = os.environ.get("IMSSIM_DB_URL")
    if url:
        return url
    try:
        url = json.loads((_config_dir() / "settings.json").read_text()).get(_SETTINGS_KEY)
    except (OSError, ValueError, AttributeError):
        url = None
    if url:
        return str(url)
    return f"sqlite:///{data_dir() / 'progress.sqlite'}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def pending_dir() -> Path:
    return data_dir() / "pending"


def pending_for(url: str | None = None) -> list[Path]:
    """The pending files kept for the database ``url`` (default: the configured one): the
    sessions finished while it could not be reached, saved when a store opens on it."""
    d = pending_dir()
    if not d.is_dir():
        return []
    key = mask_url(url or configured_url())
    out = []
    for p in sorted(d.glob("*.json")):
        try:
            if json.loads(p.read_text()).get("db") == key:
                out.append(p)
        except (OSError, ValueError, AttributeError):
            continue
    return out


_TRAINEE_KEY = "trainee"


def remembered_trainee() -> str | None:
    """Who uses imssim here: ``IMSSIM_TRAINEE``, else the name the window remembered."""
    who = os.environ.get("IMSSIM_TRAINEE")
    if who and who.strip():
        return who.strip()
    from ...model.store import read_settings

    who = read_settings().get(_TRAINEE_KEY)
    return who.strip() if isinstance(who, str) and who.strip() else None


def remember_trainee(name: str) -> None:
    """Keep ``name`` in imssim's settings.json (the window asks once)."""
    from ...model.store import read_settings, write_settings

    name = name.strip()
    if not name:
        raise ProgressError("a trainee needs a name or id")
    s = read_settings()
    s[_TRAINEE_KEY] = name
    write_settings(s)


def _engine_url(url: str) -> str:
    # plain postgresql:// -> the psycopg (3) driver we depend on
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _short(err: BaseException) -> str:
    msg = str(getattr(err, "orig", None) or err).strip().splitlines()
    return msg[0] if msg else type(err).__name__


class ProgressStore:
    """Open with :func:`open_store` (or ``ProgressStore(url)``); use as a context manager."""

    def __init__(self, url: str | None = None, *, migrate: bool = True, retry_pending: bool = True,
                 connect_timeout_s: int = 5):
        from sqlalchemy import create_engine, event

        self.url = url or configured_url()
        self.masked = mask_url(self.url)
        eu = _engine_url(self.url)
        self.dialect = eu.split(":", 1)[0].split("+", 1)[0]
        kw: dict = {"future": True}
        if self.dialect == "sqlite":
            path = eu.split("///", 1)[1] if "///" in eu else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kw["connect_args"] = {"timeout": 30}
        elif self.dialect == "postgresql":
            kw["connect_args"] = {"connect_timeout": connect_timeout_s}
            kw["pool_pre_ping"] = True
        try:
            self.engine = create_engine(eu, **kw)
        except Exception as e:
            raise ProgressError(f"progress database {self.masked}: {_short(e)}") from None
        if self.dialect == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _rec):
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _sqlite_begin(conn):
                # writers take the lock up front and queue instead of failing mid-transaction;
                # reads (see _read) begin deferred and never block a writer
                conn.exec_driver_sql("BEGIN " + conn.get_execution_options().get("sqlite_begin", "IMMEDIATE"))
        if migrate:
            self._migrate()
        if retry_pending:
            self.retry_pending()

    def _read(self):
        """A connection for reading (SQLite: a deferred transaction, no write lock)."""
        conn = self.engine.connect()
        return conn.execution_options(sqlite_begin="DEFERRED") if self.dialect == "sqlite" else conn

    # -- schema -------------------------------------------------------------------------
    def _migrate(self) -> None:
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from sqlalchemy import text

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        try:
            with self._read() as conn:
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return
                from alembic import command

                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except Exception as e:
            if _is_unreachable(e):
                raise ProgressUnavailable(f"cannot reach the progress database {self.masked}: {_short(e)}") from None
            raise ProgressError(f"progress database {self.masked}: {_short(e)}") from None

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # -- trainees -----------------------------------------------------------------------
    def _trainee_id(self, conn, name: str, role: str | None = None) -> int:
        from sqlalchemy import select

        from .schema import trainees

        name = name.strip()
        if not name:
            raise ProgressError("a trainee needs a name or id")
        row = conn.execute(select(trainees.c.id, trainees.c.role).where(trainees.c.name == name)).first()
        if row is not None:
            if role is not None and row.role != role:
                conn.execute(trainees.update().where(trainees.c.id == row.id).values(role=role))
            return int(row.id)
        # two processes may add the same new trainee at once: insert in a savepoint, re-read on conflict
        from sqlalchemy.exc import IntegrityError

        try:
            with conn.begin_nested():
                return int(conn.execute(trainees.insert().values(
                    name=name, role=role or "trainee", created_at=datetime.now(timezone.utc))).inserted_primary_key[0])
        except IntegrityError:
            return int(conn.execute(select(trainees.c.id).where(trainees.c.name == name)).scalar_one())

    def add_trainee(self, name: str, role: str = "trainee") -> int:
        if role not in ROLES:
            raise ProgressError(f"role must be one of {', '.join(ROLES)}")
        with self._begin() as conn:
            return self._trainee_id(conn, name, role)

    def role_of(self, name: str) -> str | None:
        from sqlalchemy import select

        from .schema import trainees

        with self._read() as conn:
            return conn.execute(select(trainees.c.role).where(trainees.c.name == name.strip())).scalar_one_or_none()

    def trainees(self) -> list[dict]:
        from sqlalchemy import func, select

        from .schema import sessions, trainees

        q = (select(trainees.c.name, trainees.c.role, func.count(sessions.c.id).label("sessions"))
             .select_from(trainees.outerjoin(sessions, sessions.c.trainee_id == trainees.c.id))
             .group_by(trainees.c.id, trainees.c.name, trainees.c.role).order_by(trainees.c.name))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- saving -------------------------------------------------------------------------
    def _begin(self):
        try:
            return self.engine.begin()
        except Exception as e:  # pragma: no cover - engine.begin connects lazily in __enter__
            raise ProgressUnavailable(f"cannot reach the progress database {self.masked}: {_short(e)}") from None

    def _insert(self, rec: SessionRecord) -> int:
        from sqlalchemy import select

        from .schema import needles, sessions

        with self.engine.begin() as conn:
            have = conn.execute(select(sessions.c.id).where(sessions.c.uid == rec.uid)).scalar_one_or_none()
            if have is not None:
                return int(have)  # a retried save: already there
            tid = self._trainee_id(conn, rec.trainee)
            fin = datetime.fromisoformat(rec.finished_at) if isinstance(rec.finished_at, str) else rec.finished_at
            sid = conn.execute(sessions.insert().values(
                uid=rec.uid, trainee_id=tid, case_id=rec.case_id, mode=rec.mode, course_session=rec.course_session,
                finished_at=fin, duration_s=rec.duration_s, total=rec.total, passed=rec.passed,
                safety_failed=rec.safety_failed, level_error=rec.level_error, min_clearance_mm=rec.min_clearance_mm,
                families=rec.families, breakdown=rec.breakdown, events=rec.events, mistakes=rec.mistakes,
                patient=rec.patient, needle_count=len(rec.needles), recording_path=rec.recording_path,
                recording_sha256=rec.recording_sha256, imssim_version=rec.imssim_version)).inserted_primary_key[0]
            if rec.needles:
                conn.execute(needles.insert(), [{"session_id": sid, "number": n["number"], "structure": n["structure"],
                                                 "target": bool(n["target"]), "level_error": n.get("level_error"),
                                                 "sentence": n.get("sentence", "")} for n in rec.needles])
            return int(sid)

    def save(self, rec: SessionRecord) -> int:
        """Save one finished session in one transaction; returns its row id.

        When the database cannot be reached the record goes to a pending file first and
        :class:`ProgressUnavailable` says where; nothing is lost."""
        try:
            return self._insert(rec)
        except Exception as e:
            if not _is_unreachable(e):
                raise ProgressError(f"progress database {self.masked}: {_short(e)}") from None
            path = keep_pending(rec, self.url)
            raise ProgressUnavailable(f"cannot reach the progress database {self.masked} ({_short(e)}); "
                                      f"the session is kept in {path} and will be saved next time") from None

    def retry_pending(self) -> int:
        """Save the pending records kept for this URL; returns how many were saved."""
        d = pending_dir()
        if not d.is_dir():
            return 0
        n = 0
        key = mask_url(self.url)
        for p in sorted(d.glob("*.json")):
            try:
                doc = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if doc.get("db") != key:
                continue
            try:
                self._insert(SessionRecord.from_dict(doc["record"]))
            except Exception:
                break  # still down (or broken): keep it for next time
            p.unlink(missing_ok=True)
            n += 1
        return n

    # -- reading ------------------------------------------------------------------------
    def sessions(self, student: str | None = None, case: str | None = None, with_needles: bool = False) -> list[dict]:
        """Finished sessions, oldest first (dicts with the columns and ``trainee``)."""
        from sqlalchemy import select

        from .schema import needles, sessions, trainees

        q = (select(sessions, trainees.c.name.label("trainee"))
             .join(trainees, trainees.c.id == sessions.c.trainee_id).order_by(sessions.c.finished_at, sessions.c.id))
        if student:
            q = q.where(trainees.c.name == student)
        if case:
            q = q.where(sessions.c.case_id == case)
        with self._read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
            if with_needles and rows:
                by = {r["id"]: r for r in rows}
                for r in rows:
                    r["needles"] = []
                for n in conn.execute(select(needles).where(needles.c.session_id.in_(list(by))).order_by(
                        needles.c.session_id, needles.c.number)):
                    by[n.session_id]["needles"].append(dict(n._mapping))
        return rows

    def summary_rows(self, student: str | None = None, case: str | None = None) -> list[dict]:
        """The light columns the reports need (no breakdown text, no needles): fast on big classes."""
        from sqlalchemy import select

        from .schema import sessions, trainees

        s = sessions.c
        q = (select(trainees.c.name.label("trainee"), s.case_id, s.mode, s.course_session, s.finished_at, s.total,
                    s.passed, s.safety_failed, s.level_error, s.min_clearance_mm, s.families, s.mistakes, s.patient)
             .join(trainees, trainees.c.id == s.trainee_id).order_by(s.finished_at, s.id))
        if student:
            q = q.where(trainees.c.name == student)
        if case:
            q = q.where(s.case_id == case)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def last_patient(self, student: str, case: str) -> dict | None:
        """The patient after the trainee's latest course session of ``case`` (None: no course started)."""
        from sqlalchemy import select

        from .schema import sessions, trainees

        q = (select(sessions.c.patient).join(trainees, trainees.c.id == sessions.c.trainee_id)
             .where(trainees.c.name == student, sessions.c.case_id == case, sessions.c.course_session.is_not(None))
             .order_by(sessions.c.course_session.desc(), sessions.c.id.desc()).limit(1))
        with self._read() as conn:
            p = conn.execute(q).scalar_one_or_none()
        return (p or {}).get("after") if p else None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_unreachable(e: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(e, OperationalError):
        return True
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    return isinstance(e, (ConnectionError, TimeoutError))


def keep_pending(rec: SessionRecord, url: str) -> Path:
    """Write ``rec`` to the pending folder atomically (temp file, fsync, rename)."""
    d = pending_dir()
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{rec.uid}.json"
    tmp = d / f".{rec.uid}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"db": mask_url(url), "kept_at": time.time(), "record": rec.to_dict()}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def open_store(url: str | None = None, **kw) -> ProgressStore:
    return ProgressStore(url, **kw)
