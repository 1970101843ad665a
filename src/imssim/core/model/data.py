"""Where imssim's own data files live, and safe YAML reading."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from ruamel.yaml import YAML

#: Largest YAML file imssim will read (scenarios, manifests, data files).
MAX_YAML_BYTES = 2 * 1024 * 1024


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"imssim data folder not found; looked in {', '.join(map(str, candidates))}")


def meshes_dir() -> Path:
    """The ``meshes/`` data folder (packaged as ``imssim/_meshes`` in a wheel)."""
    pkg = Path(str(resources.files("imssim")))
    # a source checkout (editable install) first, so edits to meshes/ take effect
    return _first_existing(pkg.parents[1] / "meshes", pkg / "_meshes")


def scenarios_dir() -> Path:
    """The shipped scenario library (``scenarios/`` in the repository)."""
    pkg = Path(str(resources.files("imssim")))
    return _first_existing(pkg.parents[1] / "scenarios", pkg / "_scenarios")


def safe_yaml() -> YAML:
    """A YAML reader that builds only plain data (no tags that construct objects)."""
    y = YAML(typ="safe", pure=True)
    return y


def read_yaml(path: str | Path, max_bytes: int = MAX_YAML_BYTES):
    """Read a YAML file safely (:mod:`imssim.core.safefile`: no anchors, aliases or tags,
    capped size and depth); raises ``SafeFileError`` (a ValueError) with a one-line message."""
    from ..safefile import read_yaml as _read

    return _read(path, max_bytes)


@lru_cache(maxsize=None)
def muscles_data() -> dict:
    """The parsed ``meshes/muscles.yaml``."""
    return read_yaml(meshes_dir() / "muscles.yaml")
