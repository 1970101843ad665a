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
import re
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from ... import __version__
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


#: What an atlas name may be: it becomes a file name in the cache.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AtlasNameError(AtlasFileError, ValueError):
    """An atlas name that cannot be used (it would escape the cache folder, or is reserved)."""


def check_name(name, allow_builtin: bool = False, what: str = "atlas name") -> str:
    """``name`` if it is a safe atlas name: letters, digits, ``_ . -`` (64 at most), no
    path separators or ``..``; ``builtin`` is reserved unless ``allow_builtin``."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise AtlasNameError(f"{what} {name!r}: use letters, digits, '_', '.' and '-' only (at most 64, "
                             "starting with a letter or digit; no '/', '\\' or '..')")
    if name.lower() == BUILTIN and not (allow_builtin and name == BUILTIN):
        raise AtlasNameError(f"{what} {name!r}: the name 'builtin' is reserved for the built-in atlas")
    return name


def imported_path(name: str) -> Path:
    """Where the imported atlas ``name`` is cached (the name is checked: see :func:`check_name`)."""
    folder = cache_dir() / "atlas" / "imported"
    p = folder / f"{check_name(name)}.npz"
    if p.resolve().parent != folder.resolve():  # belt and braces: never outside the folder
        raise AtlasNameError(f"atlas name {name!r}: would be stored outside {folder}")
    return p


def available_atlases() -> list[str]:
    names = [BUILTIN]
    d = cache_dir() / "atlas" / "imported"
    if d.is_dir():
        names += sorted(p.stem for p in d.glob("*.npz"))
    return names


def _settings_path() -> Path:
    return config_dir() / "settings.json"


def read_settings() -> dict:
    """The settings file (read safely); a missing or damaged one counts as empty (with a warning)."""
    from ..safefile import SafeFileError, read_json

    p = _settings_path()
    if not p.exists():
        return {}
    try:
        s = read_json(p, max_bytes=1024 * 1024, max_depth=8)
    except SafeFileError as e:
        log.warning("%s; using the default settings", e)
        return {}
    if not isinstance(s, dict):
        log.warning("%s: not a mapping of settings; using the default settings", p)
        return {}
    return s


def write_settings(settings: dict) -> None:
    p = _settings_path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2))
    tmp.replace(p)


def current_atlas_name() -> str:
    name = os.environ.get("IMSSIM_ATLAS") or read_settings().get("atlas", BUILTIN)
    return check_name(name, allow_builtin=True, what="the selected atlas (IMSSIM_ATLAS or settings)")


def use_atlas(name: str) -> None:
    check_name(name, allow_builtin=True)
    if name not in available_atlases():
        raise KeyError(f"no atlas named {name!r}; available: {', '.join(available_atlases())}")
    s = read_settings()
    s["atlas"] = name
    write_settings(s)


def load_atlas(name: str | None = None, progress: Progress | None = None, habitus: str | None = "average") -> Atlas:
    """Load an atlas by name (default: the selected one, normally the built-in atlas)."""
    from .build.skin import for_habitus

    name = check_name(name, allow_builtin=True) if name else current_atlas_name()
    if name == BUILTIN:
        return load_builtin(progress, habitus=habitus)
    path = imported_path(name)
    if not path.exists():
        raise AtlasFileError(
            f"no atlas named {name!r} (looked for {path}); available: {', '.join(available_atlases())}"
        )
    atlas = Atlas.load(path)
    return atlas if habitus is None else for_habitus(atlas, habitus)
