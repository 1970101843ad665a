"""Helpers for the course and progress tests: drive whole sessions through the core."""

from __future__ import annotations

import numpy as np

from needle_helpers import APPROACH, needle_into


def needle_to_point(index, sid: str, p, approaches=("posterior", "right", "left")):
    """(entry, direction, depth) of a straight needle whose tip lies at ``p`` inside ``sid``, or None."""
    p = np.asarray(p, float)
    for a in approaches:
        view = APPROACH[a]
        hit = index.snap_to_skin(p - view * 500.0, view)
        if hit is None or not hit.on_skin:
            continue
        d = p - hit.point
        depth = float(np.linalg.norm(d))
        if depth < 3 or depth > 75:
            continue
        tr = index.query(hit.point, d, depth)
        if tr.structure_at_tip == sid and not tr.breaches:
            return hit.point, d / depth, depth
    return None


def treat_well(session, pistons: int = 4, only=None):
    """Needle every supersensitive muscle (or those in ``only``) at its trigger loci and piston
    there (twitch + release)."""
    t = 1.0
    index = session.index
    for lc in session.physiology.loci:
        if only is not None and lc.structure not in only:
            continue
        pose = needle_to_point(index, lc.structure, lc.xyz)
        if pose is None:
            continue
        e, d, depth = pose
        if len(session.needles) >= session.scenario.safety.max_needles:
            break
        i = session.insert_needle(e, d, depth, length_mm=75, t=t)
        for _ in range(pistons):
            t += 1.0
            session.piston(i, 3.0, t=t)
        t += 1.0
    return session.finish(t=t + 1)


def treat_targets(session, structures, approach="posterior"):
    """One needle into each structure (no aiming at loci)."""
    t = 1.0
    for sid in structures:
        for a in (approach, "right", "left"):
            try:
                e, d, depth = needle_into(session.index, sid, a)
                break
            except AssertionError:
                continue
        else:
            continue
        i = session.insert_needle(e, d, depth, length_mm=75, t=t)
        session.piston(i, 3.0, t=t + 0.5)
        t += 1.0
    return session.finish(t=t + 1)


# -- the progress database, on SQLite and on PostgreSQL ---------------------------------
import os
import uuid

import pytest

PG_ENV = "IMSSIM_TEST_PG_URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pg_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if in_ci():
            pytest.fail(f"{PG_ENV} is not set: .ci/run starts a PostgreSQL server for these tests (CI=true: no skipping)")
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (see .ci/postgres.sh) to run the store tests on PostgreSQL")
    return url


def fresh_db_url(kind: str, tmp_path) -> tuple[str, callable]:
    """A URL of an empty database of ``kind`` ('sqlite' or 'postgresql') and a clean-up."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'progress.sqlite'}", lambda: None
    import psycopg

    admin = pg_admin_url()
    name = f"imssim_t_{uuid.uuid4().hex[:12]}"
    dsn = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base, _ = dsn.rsplit("/", 1)

    def drop():
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, monkeypatch):
    """An empty progress database on each backend (and a private data folder)."""
    monkeypatch.setenv("IMSSIM_DATA_DIR", str(tmp_path / "data"))
    url, drop = fresh_db_url(request.param, tmp_path)
    yield url
    drop()
