"""Finding, caching and loading atlases.

The built-in atlas is built once from the shipped BodyParts3D body (``meshes/bodyparts3d``)
and cached in the user's cache folder
(``platformdirs``; override with ``IMSSIM_CACHE_DIR``), keyed by a hash of everything
that goes into it: imssim's version, the builder source files, the data files under
``meshes/`` (the shipped body's header carries its arrays' sha256). A corrupt or stale cache file is
detected on load and rebuilt; it never crashes the program.

Imported atlases (``imssim atlas import``) live in the same cache under their own names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from .atlas import Atlas, AtlasFileError
from .data import meshes_dir

log = logging.getLogger(__name__)

BUILTIN = "builtin"
Progress = Callable[[str, float], None]


def _user_dir(env: str, which: str) -> Path:
    """A per-user folder: ``$env`` if set, else platformdirs' ``user_<which>_dir``."""
    override = os.environ.get(env)
    if override:
        p = Path(override)
    else:
        import platformdirs

        p = Path(getattr(platformdirs, f"user_{which}_dir")("imssim", appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def cache_dir() -> Path:
    return _user_dir("IMSSIM_CACHE_DIR", "cache")


def config_dir() -> Path:
    return _user_dir("IMSSIM_CONFIG_DIR", "config")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def builtin_key() -> str:
    """Hash of every input of the built-in atlas (code, data, source package versions)."""
    h = hashlib.sha256()
    h.update(f"imssim {__version__} format {Atlas.FORMAT_VERSION}".encode())
    build_dir = Path(__file__).parent / "build"
    for f in sorted(build_dir.glob("*.py")) + [Path(__file__).parent / "atlas.py", Path(__file__).parent / "innervation.py"]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for f in sorted(meshes_dir().glob("*.yaml")) + [meshes_dir() / "bodyparts3d" / "structures.json"]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for dist in ("manifold3d", "scikit-image"):
        h.update(f"{dist}={_version(dist)}".encode())
    return h.hexdigest()[:16]


def builtin_path() -> Path:
    return cache_dir() / "atlas" / f"{BUILTIN}-{builtin_key()}.npz"


def build_builtin(progress: Progress | None = None) -> Atlas:
    from .build import builtin

    atlas = builtin.build(progress or (lambda m, f: None))
    atlas.meta["cache_key"] = builtin_key()
    return atlas


def load_builtin(progress: Progress | None = None, rebuild: bool = False, habitus: str | None = "average") -> Atlas:
    """The built-in atlas, from the cache if it is there and sound, else built and cached.

    ``habitus`` selects the body build (lean, average, obese) whose skin and fat appear as
    ``skin`` and ``subcutaneous``; ``None`` returns every variant (``skin@lean``, ...).
    """
    from .build.skin import for_habitus

    atlas = _load_builtin_full(progress, rebuild)
    return atlas if habitus is None else for_habitus(atlas, habitus)


def _load_builtin_full(progress: Progress | None = None, rebuild: bool = False) -> Atlas:
    path = builtin_path()
    if path.exists() and not rebuild:
        try:
            atlas = Atlas.load(path)
            if atlas.meta.get("cache_key") == builtin_key():
                return atlas
            log.warning("%s: stale atlas cache (key mismatch); rebuilding", path)
        except AtlasFileError as e:
            log.warning("%s; rebuilding", e)
    atlas = build_builtin(progress)
    atlas.save(path)
    # the cache stores float32 vertices: give the fresh atlas the same values, so a session
    # recorded right after a build replays identically from the cache
    for st in atlas:
        st.vertices = st.vertices.astype(np.float32).astype(np.float64)
    # remove older built-in caches
    for old in path.parent.glob(f"{BUILTIN}-*.npz"):
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass
    return atlas


def imported_path(name: str) -> Path:
    return cache_dir() / "atlas" / "imported" / f"{name}.npz"


def available_atlases() -> list[str]:
    names = [BUILTIN]
    d = cache_dir() / "atlas" / "imported"
    if d.is_dir():
        names += sorted(p.stem for p in d.glob("*.npz"))
    return names


def _settings_path() -> Path:
    return config_dir() / "settings.json"


def read_settings() -> dict:
    p = _settings_path()
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def write_settings(settings: dict) -> None:
    p = _settings_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2))
    tmp.replace(p)


def current_atlas_name() -> str:
    return os.environ.get("IMSSIM_ATLAS") or read_settings().get("atlas", BUILTIN)


def use_atlas(name: str) -> None:
    if name not in available_atlases():
        raise KeyError(f"no atlas named {name!r}; available: {', '.join(available_atlases())}")
    s = read_settings()
    s["atlas"] = name
    write_settings(s)


def load_atlas(name: str | None = None, progress: Progress | None = None, habitus: str | None = "average") -> Atlas:
    """Load an atlas by name (default: the selected one, normally the built-in atlas)."""
    from .build.skin import for_habitus

    name = name or current_atlas_name()
    if name == BUILTIN:
        return load_builtin(progress, habitus=habitus)
    path = imported_path(name)
    if not path.exists():
        raise AtlasFileError(
            f"no atlas named {name!r} (looked for {path}); available: {', '.join(available_atlases())}"
        )
    atlas = Atlas.load(path)
    return atlas if habitus is None else for_habitus(atlas, habitus)
