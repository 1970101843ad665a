"""Shared fixtures.

The whole test session uses one private atlas cache (a temporary folder) so tests never
touch the user's cache; the built-in atlas is built once per session.
Set IMSSIM_TEST_CACHE=/some/dir to reuse a cache between local runs (the atlases imported
by an earlier run are removed from it at the start).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_cache = os.environ.get("IMSSIM_TEST_CACHE") or tempfile.mkdtemp(prefix="imssim-test-cache-")
os.environ["IMSSIM_CACHE_DIR"] = _cache
# a reused cache keeps the built-in atlas, not the atlases earlier runs' tests imported
# (the import tests save under fixed names and would find them "already exists")
if os.environ.get("IMSSIM_TEST_CACHE"):
    import shutil

    shutil.rmtree(Path(_cache) / "atlas" / "imported", ignore_errors=True)
os.environ.setdefault("IMSSIM_CONFIG_DIR", tempfile.mkdtemp(prefix="imssim-test-config-"))


def shared_dir() -> Path | None:
    """The read-only ``shared/`` folder beside the repository (or IMSSIM_SHARED_DIR)."""
    env = os.environ.get("IMSSIM_SHARED_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared", REPO.parent.parent / "shared"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def atlas():
    from imssim.core.model import store

    return store.load_builtin()


@pytest.fixture(scope="session")
def index(atlas):
    """One traversal index over the built-in atlas (average build) for the session."""
    from imssim.core.engines.traversal import TissueIndex

    return TissueIndex(atlas)


@pytest.fixture(scope="session")
def obese_index():
    from imssim.core.model import store
    from imssim.core.engines.traversal import TissueIndex

    return TissueIndex(store.load_builtin(habitus="obese"))


@pytest.fixture(scope="session")
def l5(atlas):
    """The default scenario (chronic low back pain, right L5) on the built-in atlas."""
    from imssim.core.training.scenario import load_scenario

    return load_scenario("l5-radiculopathy-low-back", atlas)


@pytest.fixture(scope="session")
def shared():
    d = shared_dir()
    if d is None:
        pytest.skip("the shared/ reference folder is not beside this checkout (CI provides it)")
    return d
