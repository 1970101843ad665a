"""The progress database's tables (SQLAlchemy 2 Core). Changes go through an Alembic
migration in ``migrations/versions`` (the tables here must match the newest one;
tests/test_progress_store.py checks it)."""

from __future__ import annotations

from sqlalchemy import (JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table,
                        Text, UniqueConstraint)

metadata = MetaData()

trainees = Table(
    "trainees", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(20), nullable=False, server_default="trainee"),  # trainee | instructor
    Column("created_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(64), nullable=False, unique=True),  # written by the client: a retried save is idempotent
    Column("trainee_id", Integer, ForeignKey("trainees.id"), nullable=False),
    Column("case_id", String(80), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("course_session", Integer, nullable=True),  # 1-based, None: not part of a course
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("total", Float, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("safety_failed", Boolean, nullable=False),
    Column("level_error", Float, nullable=True),
    Column("min_clearance_mm", Float, nullable=True),
    Column("families", JSON, nullable=False),  # family -> 0..1 or None
    Column("breakdown", JSON, nullable=False),  # metric name -> {value, score, sentence}
    Column("events", JSON, nullable=False),  # event kind -> count
    Column("mistakes", JSON, nullable=False),  # list of mistake tags (common mistakes across a class)
    Column("patient", JSON, nullable=True),  # course: the patient before and after this session
    Column("needle_count", Integer, nullable=False),
    Column("recording_path", Text, nullable=True),
    Column("recording_sha256", String(64), nullable=True),
    Column("imssim_version", String(40), nullable=True),
    Index("ix_sessions_trainee_case", "trainee_id", "case_id"),
)

needles = Table(
    "needles", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("structure", String(120), nullable=True),
    Column("target", Boolean, nullable=False),
    Column("level_error", Integer, nullable=True),
    Column("sentence", Text, nullable=False),
    UniqueConstraint("session_id", "number"),
    Index("ix_needles_session", "session_id"),
)
