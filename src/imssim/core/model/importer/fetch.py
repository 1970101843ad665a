"""Downloading open datasets with pooch: pinned URLs, sha256 checks, and a mirror setting.

The registry pins each Visible Human lower-limb file to the GitHub mirror of the dataset at
one commit, with its sha256. ``IMSSIM_DATA_MIRROR`` (or the ``--mirror`` option) points at
a local folder or a URL that holds the same files under their file names (flat), for
offline machines; files from a mirror are checked against the same sha256 values.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .readers import sha256_of

#: GitHub mirror of doi:10.56902/COB.vh.2022.0 (ingvilddevold/muscle-growth), pinned commit.
VHM_COMMIT = "e299f62095269cdca60155eae9cf05440469c528"
VHM_BASE_URL = f"https://raw.githubusercontent.com/ingvilddevold/muscle-growth/{VHM_COMMIT}/data/VHM_surfaces/"

#: file name -> (folder in the source, sha256). Sacrum and coccyx sit in the source's Left/
#: folder although they are midline structures.
VHM_FILES: dict[str, tuple[str, str]] = {
    "VHM_Left_Bone_Coccyx_smooth.stl": ("Left", "b7021e80aad02c9f015f5663288948422abf0525b5ed8ab471e0babcd3299747"),
    "VHM_Left_Bone_Sacrum_smooth.stl": ("Left", "7e1ac9ab41c064b6d06cbea7fe29cd4c7da9e44e5486665b2d0d6782e87af1c7"),
    "VHM_Right_Bone_Fibula_smooth.stl": ("Right", "0d807c01a5de00f9be981d37336cd1a683c75f66b45be9a83e97592cfe21201b"),
    "VHM_Right_Muscle_BicepsFemorisLong_smooth.stl": ("Right", "90a2a7fcede07063c8915eb36085480a6641a31b254b1029bb14f41b12b276f0"),
    "VHM_Right_Muscle_BicepsFemorisShort_smooth.stl": ("Right", "32fbe360baed8e17ee999105a198d6abaaef8b3db7b371b3c9f7021ea1c1a09a"),
    "VHM_Right_Muscle_GastrocnemiusLateral_smooth.stl": ("Right", "9891bc109ec63451fe444ebbd9df5cd5e5e17f2df70ea96e07d62cee1e97ec14"),
    "VHM_Right_Muscle_GastrocnemiusMedial_smooth.stl": ("Right", "8477870b6fe512c5f81191a75061b033a96187a2d7839abf23b7ec83164405d3"),
    "VHM_Right_Muscle_GluteusMaximus_smooth.stl": ("Right", "252e3bc2b4d3ec05f5e8169516c0be6beca6106077f5d64b7ebe326f8668637f"),
    "VHM_Right_Muscle_GluteusMedius_smooth.stl": ("Right", "996d29e3551c5b3d09f66f14a40d8062591e3779dd45cf2f01f94943ac5c08eb"),
    "VHM_Right_Muscle_GluteusMinimus_smooth.stl": ("Right", "97d63b48e472a085cd0b666e277e8cb9bba39d4928791cf78ae6b99cf9c8ebf5"),
    "VHM_Right_Muscle_PeroneusLongus_smooth.stl": ("Right", "d174cb903d808d40e8c6ab0be34ff34fd3070bd9ea8115c573bf3a29cb08b9c5"),
    "VHM_Right_Muscle_Piriformis_smooth.stl": ("Right", "38a48a9b7d9c57f80a443019850e44726d4c274b3a7ed9ed1e11d1175b3aa75e"),
    "VHM_Right_Muscle_PsoasMajor_smooth.stl": ("Right", "f2498e278831e46e0a2af79c0480ca852d9bfda0bdd342ceb10e7109346fc421"),
    "VHM_Right_Muscle_Semitendinosus_smooth.stl": ("Right", "8c7e2538f0c283e9ca66049646de8e7de9b5a0427e2f47a9cb3d8c0020c70fea"),
    "VHM_Right_Muscle_Soleus_smooth.stl": ("Right", "c29565f8180a71c4064934fd2c5ec70c487793b87ea889e39a036ad33c64443b"),
    "VHM_Right_Muscle_TensorFasciaeLatae_smooth.stl": ("Right", "816b122c4bd1d5ec882ff6fa0b9a0e2b08890541614d273261e9d70b7b6e3146"),
    "VHM_Right_Muscle_TibialisAnterior_smooth.stl": ("Right", "3a168df0adef1b9c7b0fd9183633e490beab901311cb7bd125cb0e4cc1492aa1"),
    "VHM_Right_Muscle_VastusLateralis_smooth.stl": ("Right", "0e57a1d3be5f190297a79d57569dfc7e64491fb89b783f5d8228622f433d91ae"),
}

DATASETS = {"vhm-lowerlimb": VHM_FILES}


class FetchError(RuntimeError):
    """A download or mirror copy that failed or did not match its checksum."""


def mirror_setting(mirror: str | None = None) -> str | None:
    """The mirror to use: the argument, else ``IMSSIM_DATA_MIRROR``, else none (the pinned URLs)."""
    return mirror or os.environ.get("IMSSIM_DATA_MIRROR") or None


def default_dest(dataset: str = "vhm-lowerlimb") -> Path:
    from ..store import cache_dir

    return cache_dir() / "data" / dataset


def fetch_vhm(dest: str | Path | None = None, mirror: str | None = None, only: list[str] | None = None,
              progress=None) -> list[Path]:
    """Download (or copy from a mirror) the Visible Human lower-limb files into ``dest``.

    Every file is checked against its pinned sha256; a mismatch raises :class:`FetchError`
    naming the file, and the bad file is not left in ``dest``.
    """
    import pooch

    dest = Path(dest) if dest else default_dest("vhm-lowerlimb")
    dest.mkdir(parents=True, exist_ok=True)
    names = list(only) if only else list(VHM_FILES)
    unknown = [n for n in names if n not in VHM_FILES]
    if unknown:
        raise FetchError(f"not in the vhm-lowerlimb registry: {', '.join(unknown)}")
    mirror = mirror_setting(mirror)
    local = None
    if mirror and not mirror.startswith(("http://", "https://", "ftp://")):
        local = Path(mirror[7:] if mirror.startswith("file://") else mirror).expanduser()
        if not local.is_dir():
            raise FetchError(f"{local}: mirror folder not found")
    out = []
    for i, name in enumerate(names):
        folder, sha = VHM_FILES[name]
        if progress:
            progress(f"fetching {name}", i / len(names))
        target = dest / name
        if local is not None:
            src = next((p for p in (local / name, local / folder / name) if p.is_file()), None)
            if src is None:
                raise FetchError(f"{local}: mirror has no {name}")
            if sha256_of(src) != sha:
                raise FetchError(f"{src}: sha256 does not match the registry for {name}")
            tmp = target.with_name(name + ".part")
            shutil.copyfile(src, tmp)
            tmp.replace(target)
        else:
            url = (mirror.rstrip("/") + "/" + name) if mirror else VHM_BASE_URL + f"{folder}/{name}"
            try:
                got = pooch.retrieve(url, known_hash=f"sha256:{sha}", fname=name, path=dest, progressbar=False)
            except ValueError as e:  # pooch: hash mismatch (the file is removed)
                raise FetchError(f"{name}: {str(e).splitlines()[0]}") from None
            except Exception as e:  # network errors
                raise FetchError(f"{name}: download from {url} failed ({type(e).__name__}: {e})") from None
            target = Path(got)
        out.append(target)
    if progress:
        progress("done", 1.0)
    return out
