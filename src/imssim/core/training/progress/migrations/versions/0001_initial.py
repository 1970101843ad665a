"""The first progress schema: trainees, sessions, needles.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trainees",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False, server_default="trainee"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(64), nullable=False, unique=True),
        sa.Column("trainee_id", sa.Integer, sa.ForeignKey("trainees.id"), nullable=False),
        sa.Column("case_id", sa.String(80), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("course_session", sa.Integer, nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("safety_failed", sa.Boolean, nullable=False),
        sa.Column("level_error", sa.Float, nullable=True),
        sa.Column("min_clearance_mm", sa.Float, nullable=True),
        sa.Column("families", sa.JSON, nullable=False),
        sa.Column("breakdown", sa.JSON, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("mistakes", sa.JSON, nullable=False),
        sa.Column("patient", sa.JSON, nullable=True),
        sa.Column("needle_count", sa.Integer, nullable=False),
        sa.Column("recording_path", sa.Text, nullable=True),
        sa.Column("recording_sha256", sa.String(64), nullable=True),
        sa.Column("imssim_version", sa.String(40), nullable=True),
    )
    op.create_index("ix_sessions_trainee_case", "sessions", ["trainee_id", "case_id"])
    op.create_table(
        "needles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("structure", sa.String(120), nullable=True),
        sa.Column("target", sa.Boolean, nullable=False),
        sa.Column("level_error", sa.Integer, nullable=True),
        sa.Column("sentence", sa.Text, nullable=False),
        sa.UniqueConstraint("session_id", "number"),
    )
    op.create_index("ix_needles_session", "needles", ["session_id"])


def downgrade() -> None:
    op.drop_table("needles")
    op.drop_table("sessions")
    op.drop_table("trainees")
