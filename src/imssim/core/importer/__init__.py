"""Importing atlases from open anatomy meshes: manifest -> cleaned, aligned ``Atlas``.

The public entry point is :func:`import_atlas`. An imported atlas is an ordinary
:class:`~imssim.core.atlas.Atlas` (same ids as the built-in one where the structure is the
same, so scenarios and needle queries run on it unchanged) saved with
``store.imported_path(name)``; :func:`imssim.core.store.load_atlas` loads it by name.
Import is all-or-nothing: every file is read and checked first, the atlas is written to a
temporary file and renamed into place only when everything succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..atlas import Atlas, Attribution, Innervation, Landmark, Structure
from .manifest import DIRECTIONS, UNITS, Manifest, ManifestError, StructureSpec, load_manifest, validate
from .readers import MeshFileError, clean_mesh, read_mesh, sha256_of
from .register import Similarity, icp, surface_points, umeyama, voxel_overlap

__all__ = ["import_atlas", "manifest_for_folder", "frame_matrix", "ImportFailed", "ManifestError", "MeshFileError",
           "load_manifest", "validate", "fit_report"]

Progress = Callable[[str, float], None]


class ImportFailed(ValueError):
    """The import could not be completed; nothing was written."""


def frame_matrix(units: str, axes: str) -> np.ndarray:
    """3x3 matrix taking source coordinates to millimetres LPS."""
    M = np.zeros((3, 3))
    for j, c in enumerate(axes.upper()):
        k, sign = DIRECTIONS[c]
        M[k, j] = sign * UNITS[units]
    return M


def manifest_for_folder(folder: str | Path, profile: str, name: str | None = None,
                        skipped: list | None = None) -> Manifest:
    """A manifest for every recognised file of a dataset folder, using a profile.

    A profile with ``skip_unknown`` takes only the mesh files it can name; the others are
    appended to ``skipped`` as (file, reason)."""
    from .profiles import MESH_SUFFIXES, PROFILES

    folder = Path(folder)
    if profile not in PROFILES:
        raise ManifestError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    files = sorted(p for p in folder.rglob(prof["glob"]) if p.is_file())
    identify = prof.get("identify") if prof.get("skip_unknown") else None
    if identify is not None:
        kept, seen = [], set()
        for p in files:
            if p.suffix.lower() not in MESH_SUFFIXES:
                continue
            try:
                sid = identify(p.name).id
            except KeyError as e:
                if skipped is not None:
                    skipped.append((str(p.relative_to(folder)), e.args[0] if e.args else str(e)))
                continue
            if sid in seen:
                if skipped is not None:
                    skipped.append((str(p.relative_to(folder)), f"a second file for {sid}"))
                continue
            seen.add(sid)
            kept.append(p)
        files = kept
    if not files:
        raise ManifestError(f"{folder}: no files matching {prof['glob']} for profile {profile}"
                            + (" that it recognises" if identify is not None else ""))
    data = {
        "name": name or f"{profile}-{folder.name}",
        "profile": profile,
        "attributions": [prof["attribution"]],
        "frame": prof["frame"],
        "base": str(folder),
        "structures": [{"file": str(p.relative_to(folder))} for p in files],
    }
    return validate(data, str(folder))


def _identity_for(spec: StructureSpec, profile: str | None, parts: dict | None):
    from .profiles import PROFILES, bodyparts3d_identity

    if profile is None:
        return None, None
    try:
        identify = PROFILES[profile].get("identify")
        if identify is not None:
            return identify(spec.file), None
        if parts is None:
            raise KeyError("the bodyparts3d profile needs a parts list (parts_list in the manifest folder)")
        return bodyparts3d_identity(spec.file, parts)
    except KeyError as e:
        if spec.id and spec.name and spec.kind and spec.side:
            return None, None
        raise ManifestError(f"structure {spec.file}: {e.args[0] if e.args else e}") from None


def _innervation(spec: StructureSpec, muscle: str | None, where: str) -> tuple[Innervation | None, str | None]:
    from ..innervation import lookup

    if spec.innervation:
        i = spec.innervation
        return Innervation(i.nerve, tuple(i.roots), i.dominant, i.source), muscle
    if muscle:
        try:
            facts = lookup(muscle)
        except KeyError as e:
            raise ManifestError(f"{where}: field muscle: {e.args[0]}") from None
        return facts.innervation(spec.level), facts.canonical
    return None, None


def import_atlas(
    manifest: str | Path | Manifest,
    name: str | None = None,
    profile: str | None = None,
    reference: Atlas | None = None,
    progress: Progress | None = None,
    save: bool = True,
    parts_list: str | Path | None = None,
    fill: str | None = None,
    force: bool = False,
) -> Atlas:
    """Import an atlas from a manifest file (or, with a ``profile``, a dataset folder).

    ``reference`` is the atlas to align to (default: the built-in atlas). Returns the new
    atlas (also saved under ``store.imported_path(name)`` when ``save``); its
    ``meta['fit']`` holds the fit report. The name must be a safe atlas name
    (``store.check_name``; ``builtin`` is reserved) and an existing imported atlas of that
    name is replaced only with ``force``.
    """
    from .. import store
    from .profiles import read_parts_list

    progress = progress or (lambda m, f: None)
    t0 = time.perf_counter()
    skipped: list[tuple[str, str]] = []  # files a profile read from a folder did not know
    if isinstance(manifest, Manifest):
        man, base_dir, where = manifest, Path(manifest.base), manifest.name
    else:
        path = Path(manifest)
        if path.is_dir():
            if not profile:
                raise ManifestError(f"{path}: is a folder; give a manifest file, or a --profile to read the folder with")
            man = manifest_for_folder(path, profile, name, skipped)
            base_dir, where = path, str(path)
        else:
            man = load_manifest(path)
            base_dir, where = (path.parent / man.base).resolve(), str(path)
    if isinstance(manifest, Manifest) and not base_dir.is_absolute():
        base_dir = base_dir.resolve()
    prof = profile or man.profile
    name = store.check_name(name or man.name)
    if save and not force and store.imported_path(name).exists():
        raise ManifestError(f"atlas {name!r} already exists ({store.imported_path(name)}); "
                            "choose another --name or add --force to replace it")
    parts = None
    if prof == "bodyparts3d":
        cand = [Path(parts_list)] if parts_list else sorted(base_dir.glob("*element_parts.txt")) + sorted(base_dir.glob("*parts*.csv"))
        if not cand or not cand[0].is_file():
            raise ManifestError(f"{base_dir}: the bodyparts3d profile needs the data set's parts list "
                                "(isa_element_parts.txt or a CSV name,fma_id,fj_file)")
        parts = read_parts_list(cand[0])

    M = frame_matrix(man.frame.units, man.frame.axes)
    flip = np.linalg.det(M) < 0
    structures: list[Structure] = []
    clean_reports = {}
    n = len(man.structures)
    seen = set()
    for i, spec in enumerate(man.structures):
        fpath = (base_dir / spec.file)
        progress(f"reading {spec.file}", 0.6 * i / n)
        ident, fma = _identity_for(spec, prof, parts)
        sid = spec.id or (ident.id if ident else None)
        if sid in seen:
            raise ManifestError(f"{where}: structures[{i}] ({spec.file}): duplicate id {sid!r}")
        seen.add(sid)
        if spec.sha256:
            if not fpath.is_file():
                raise MeshFileError(f"{fpath}: file not found")
            got = sha256_of(fpath)
            if got != spec.sha256:
                raise MeshFileError(f"{fpath}: checksum mismatch (sha256 {got[:12]}..., manifest says {spec.sha256[:12]}...)")
        v, f = read_mesh(fpath)
        v, f, rep = clean_mesh(v, f, man.decimate)
        v = v @ M.T
        if flip:
            f = f[:, ::-1]
        muscle = spec.muscle or (ident.muscle if ident else None)
        inn, muscle = _innervation(spec, muscle, f"{where}: structures[{i}] ({spec.file})")
        kind = spec.kind or ident.kind
        s = Structure(
            id=sid,
            name=spec.name or ident.name,
            kind=kind,
            side=spec.side or ident.side,
            region=spec.region or (ident.region if ident and ident.region else "") or "",
            vertices=v,
            faces=f.astype(np.int32),
            level=spec.level or (ident.level if ident else None),
            muscle=muscle,
            innervation=inn,
            harm=spec.harm,
            source=f"{man.name}: {spec.file}",
            aliases=tuple(a for a in (spec.fma_id or fma,) if a),
            meta={"file": spec.file, "clean": rep.as_dict(), "watertight": rep.watertight,
                  "match": spec.match or sid, **({"fma_id": spec.fma_id or fma} if (spec.fma_id or fma) else {})},
        )
        structures.append(s)
        clean_reports[sid] = rep.as_dict()

    # ---- alignment -----------------------------------------------------------------
    progress("aligning to the built-in skeleton", 0.65)
    if reference is None:
        reference = store.load_builtin()
    fit = align(structures, reference, man, M)
    T = Similarity(np.array(fit["transform"]["matrix"]), np.array(fit["transform"]["translation_mm"]),
                   fit["transform"]["scale"])
    segs = segment_fit(structures, reference, T, man) if man.align.method == "icp" else {}
    fit["segments"] = {k: {"structures": v[1], "transform": v[0].as_dict(), "rms_mm": v[2]} for k, v in segs.items()}
    by_struct = {sid: tr for tr, ids, _ in segs.values() for sid in ids}
    for s in structures:
        s.vertices = by_struct.get(s.id, T).apply(s.vertices)

    progress("measuring the fit", 0.8)
    atlas = Atlas(name, structures, attributions=[Attribution(a.source, a.licence, a.attribution, a.url)
                                                  for a in man.attributions])
    fit["structures"] = per_structure_fit(atlas, reference)
    fit["cleanup"] = clean_reports
    fit["decimate_target"] = man.decimate

    fill = fill or man.fill
    if fill == "builtin":
        progress("filling in from the built-in atlas", 0.9)
        fill_from_builtin(atlas)
    progress("landmarks", 0.95)
    add_landmarks(atlas, reference)
    atlas.meta.update({
        "imported": True,
        "profile": prof,
        "fill": fill,
        "frame": {"units": man.frame.units, "axes": man.frame.axes},
        "fit": fit,
        "skipped_files": [{"file": f, "reason": r} for f, r in skipped],
        "description": man.description,
        "import_seconds": round(time.perf_counter() - t0, 2),
    })
    if save:
        atlas.save(store.imported_path(name))
    progress("done", 1.0)
    return atlas


def align(structures: list[Structure], reference: Atlas, man: Manifest, M: np.ndarray) -> dict:
    """Similarity transform (as a dict report) taking the mapped structures onto the reference."""
    use = set(man.align.use) if man.align.use else None
    pairs = []
    names = []
    for s in structures:
        m = s.meta.get("match", s.id)
        if (use is None or s.id in use) and m in reference.structures:
            pairs.append((s, reference.structures[m]))
            names.append(s.id)
    method = man.align.method
    out = {"method": method, "used": names, "init": None}
    if method == "none" or not pairs:
        out["transform"] = Similarity.identity().as_dict()
        out["rms_mm"] = None
        if method != "none":
            out["note"] = "no structure has a built-in counterpart; not aligned"
        return out
    # initialisation
    if man.align.landmarks:
        src, dst = [], []
        for lid, p in man.align.landmarks.items():
            try:
                dst.append(reference.landmark(lid).xyz)
            except KeyError:
                raise ManifestError(f"{man.name}: field align.landmarks: the built-in atlas has no landmark {lid!r}") from None
            src.append(M @ np.asarray(p, float))
        src, dst = np.array(src), np.array(dst)
        out["init"] = "landmarks"
    else:
        src = np.array([a.centroid for a, _ in pairs])
        dst = np.array([b.centroid for _, b in pairs])
        out["init"] = "structure centroids"
    if len(src) >= 3 and np.linalg.matrix_rank(src - src.mean(0), tol=1.0) >= 2:
        T0 = umeyama(src, dst, man.align.scale)
    else:
        T0 = Similarity(np.eye(3), (dst - src).mean(0), 1.0)
        out["init"] += " (translation only: fewer than 3 non-collinear points)"
    out["init_transform"] = T0.as_dict()
    if method == "centroids":
        T, rms, its = T0, float(np.sqrt(((T0.apply(src) - dst) ** 2).sum(1).mean())), 0
    else:
        sets = [(surface_points(a.vertices, a.faces, 400, seed=k), surface_points(b.vertices, b.faces, 3000, seed=k))
                for k, (a, b) in enumerate(pairs)]
        T, rms, its = icp(sets, T0, man.align.scale, man.align.iterations)
    out["transform"] = T.as_dict()
    out["rms_mm"] = rms
    out["iterations"] = its
    return out


#: Body segments refined separately after the global fit (a different pose of the hip or
#: knee cannot be matched by one rigid transform): regions -> segment.
SEGMENT_OF_REGION = {"pelvis": "pelvis", "gluteal": "pelvis", "lumbar": "pelvis", "thigh": "thigh", "leg": "leg",
                     "foot": "leg"}


def segment_fit(structures, reference, T, man) -> dict:
    """Per body segment (pelvis, thigh, leg), a rigid refinement of the global fit by ICP.

    Bones with no region are put in the segment of their built-in counterpart's region.
    The global scale is kept. Returns {segment: (transform, structure ids, rms)}.
    """
    groups: dict[str, list] = {}
    for s in structures:
        m = s.meta.get("match", s.id)
        if m not in reference.structures:
            continue
        seg = SEGMENT_OF_REGION.get(s.region or reference.structures[m].region)
        if seg is None and s.kind == "bone":
            seg = {"fibula": "leg", "tibia": "leg", "femur": "thigh", "patella": "leg"}.get(m.split("_")[0])
        if seg:
            groups.setdefault(seg, []).append((s, reference.structures[m]))
    out = {}
    for seg, pairs in groups.items():
        if len(pairs) < 2:
            continue
        sets = [(surface_points(a.vertices, a.faces, 400, seed=k), surface_points(b.vertices, b.faces, 3000, seed=k))
                for k, (a, b) in enumerate(pairs)]
        # rigid about the global fit: solve in the globally-mapped frame, scale fixed
        mapped = [(T.apply(a), b) for a, b in sets]
        Tg, rms, _ = icp(mapped, Similarity.identity(), False, man.align.iterations)
        out[seg] = (T.then(Tg), [a.id for a, _ in pairs], rms)
    return out


def per_structure_fit(atlas: Atlas, reference: Atlas, overlap: bool = True) -> dict:
    """Per structure: centroid distance to its built-in counterpart and volume overlap."""
    res = {}
    for s in atlas:
        m = s.meta.get("match", s.id)
        if m not in reference.structures:
            continue
        r = reference.structures[m]
        d = {"counterpart": m, "centroid_distance_mm": float(np.linalg.norm(s.centroid - r.centroid)),
             "volume_mm3": float(s.volume), "counterpart_volume_mm3": float(r.volume)}
        if overlap:
            d.update(voxel_overlap(s.vertices, s.faces, r.vertices, r.faces))
        res[s.id] = d
    return res


def fill_from_builtin(atlas: Atlas) -> None:
    """Add every built-in structure (all habitus variants of skin and fat too) the atlas lacks.

    Used where a dataset covers part of the body: the imported structures replace their
    built-in counterparts, the rest of the body is the built-in one, marked
    ``meta['from'] = 'builtin'``. The built-in skin was made around the built-in muscles, so
    a bulkier imported muscle may reach through it; the fit report shows how far they differ.
    """
    from .. import store

    full = store.load_builtin(habitus=None)
    have = set(atlas.structures)
    for s in full:
        base = s.id.split("@", 1)[0]
        if s.id in have or base in have:
            continue
        atlas.add(Structure(s.id, s.name, s.kind, s.side, s.region, s.vertices, s.faces, level=s.level,
                            muscle=s.muscle, innervation=s.innervation, harm=s.harm, source=s.source,
                            aliases=s.aliases, meta={**s.meta, "from": "builtin"}))
    for a in full.attributions:
        if a not in atlas.attributions:
            atlas.attributions.append(a)


def add_landmarks(atlas: Atlas, reference: Atlas) -> None:
    """Landmarks on the aligned atlas.

    1. ``find_landmarks`` on the atlas's own bones (e.g. fibular head and lateral malleolus
       from an imported fibula, S2 from an imported sacrum).
    2. Every built-in landmark whose bone the imported atlas lacks is carried over: it is
       already in the common frame after alignment, and it is moved by the local residual,
       the inverse-distance-weighted mean offset (imported minus built-in centroid) of the
       three matched structures nearest to it. Its description says it was carried over.
    """
    from ..build.landmarks import find_landmarks

    for lm in reference.landmarks.values():  # bones that came from the built-in atlas: exact
        if lm.structure in atlas.structures and atlas.structures[lm.structure].meta.get("from") == "builtin":
            atlas.add_landmark(lm)
    for lm in find_landmarks(atlas):
        if lm.id not in atlas.landmarks:
            atlas.add_landmark(lm)
    cents, offs = [], []
    for s in atlas:
        m = s.meta.get("match", s.id)
        if m in reference.structures:
            cents.append(reference.structures[m].centroid)
            offs.append(s.centroid - reference.structures[m].centroid)
    cents, offs = np.array(cents).reshape(-1, 3), np.array(offs).reshape(-1, 3)
    for lm in reference.landmarks.values():
        if lm.id in atlas.landmarks:
            continue
        p = lm.xyz
        shift = np.zeros(3)
        if len(cents):
            d = np.linalg.norm(cents - p, axis=1)
            k = np.argsort(d)[:3]
            w = 1.0 / np.maximum(d[k], 10.0) ** 2
            shift = (offs[k] * w[:, None]).sum(0) / w.sum()
        atlas.add_landmark(Landmark(lm.id, lm.name, tuple(float(x) for x in p + shift), None,
                                    f"carried over from the built-in atlas (no {lm.structure or 'bone'} here); "
                                    "shifted by the local fit residual"))


def fit_report(atlas: Atlas) -> dict:
    """The fit report stored with an imported atlas (empty for the built-in one)."""
    return atlas.meta.get("fit", {})
