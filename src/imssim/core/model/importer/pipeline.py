"""The import pipeline: a manifest (or a dataset folder and its profile) -> a checked,
framed, aligned ``Atlas`` saved under its name, and the report of how well it fits the
built-in body. See the package docstring and docs/import.md."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..atlas import Atlas, Attribution, Innervation, Landmark, Structure
from .manifest import DIRECTIONS, UNITS, Manifest, ManifestError, StructureSpec, load_manifest, validate
from .readers import MeshFileError, clean_mesh, read_mesh, sha256_of
from .register import Similarity, icp, surface_points, umeyama, voxel_overlap
from .segments import fit_segments

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


#: files of a dataset folder that are its documentation or checksums, not meshes; listed
#: as skipped like any other file the profile does not import
def _is_parts_list(p: Path) -> bool:
    n = p.name.lower()
    return n.endswith("element_parts.txt") or (n.endswith(".csv") and "parts" in n)


def manifest_for_folder(folder: str | Path, profile: str, name: str | None = None,
                        skipped: list | None = None, parts: dict | None = None) -> Manifest:
    """A manifest for every recognised file of a dataset folder, using a profile.

    Every profile takes only the mesh files it can name; the others (not meshes, kinds
    imssim does not model such as cartilage and ligaments, unknown names, a second file for
    the same structure, files of another body in a Visible Human folder) are appended to
    ``skipped`` as (file, reason). An empty folder, or one with nothing usable, is a
    one-line ``ManifestError`` naming the folder. The frame is ``auto`` (detected on import,
    the profile's documented frame when detection is not sure).
    """
    from .profiles import MESH_SUFFIXES, PROFILES, bodyparts3d_identity, vh_body

    folder = Path(folder)
    if profile not in PROFILES:
        raise ManifestError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if not folder.is_dir():
        raise ManifestError(f"{folder}: folder not found")
    prof = PROFILES[profile]
    skipped = skipped if skipped is not None else []
    every = sorted(p for p in folder.rglob("*") if p.is_file())
    if not every:
        raise ManifestError(f"{folder}: empty folder, nothing to import")
    identify = prof.get("identify")
    if identify is None:  # bodyparts3d: names come from the file names or the parts list
        identify = lambda f: bodyparts3d_identity(f, parts)[0]  # noqa: E731
    rel = lambda p: str(p.relative_to(folder))  # noqa: E731
    cands = []
    for p in every:
        if profile == "bodyparts3d" and _is_parts_list(p):
            continue  # used, not skipped
        if p.suffix.lower() not in MESH_SUFFIXES:
            skipped.append((rel(p), "not a mesh file"))
            continue
        try:
            cands.append((p, identify(p.name).id))
        except KeyError as e:
            skipped.append((rel(p), str(e.args[0] if e.args else e).removeprefix(f"{p.name}: ")))
    if profile == "vhm":  # one body per atlas: the other body's files are skipped
        bodies = [vh_body(p.name) for p, _ in cands]
        if len(set(bodies)) > 1:
            main = max(sorted(set(bodies)), key=bodies.count)
            for (p, _), b in zip(list(cands), bodies):
                if b != main:
                    skipped.append((rel(p), f"a file of the other body ({b}); this folder is read as {main}"))
            cands = [(p, sid) for (p, sid), b in zip(cands, bodies) if b == main]
    kept, seen = [], set()
    for p, sid in cands:
        if sid in seen:
            skipped.append((rel(p), f"a second file for {sid}"))
            continue
        seen.add(sid)
        kept.append(p)
    if not kept:
        eg = f"; e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ManifestError(f"{folder}: nothing to import: none of its {len(every)} files is one the {profile} "
                            f"profile recognises{eg}")
    data = {
        "name": name or f"{profile}-{folder.name}",
        "profile": profile,
        "attributions": [prof["attribution"]],
        "frame": {"units": "auto", "axes": "auto"},
        "base": str(folder),
        "structures": [{"file": rel(p)} for p in kept],
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

    progress = progress or (lambda m, f: None)
    t0 = time.perf_counter()
    skipped: list[tuple[str, str]] = []  # files a profile read from a folder did not know
    parts = None
    path_is_folder = not isinstance(manifest, Manifest) and Path(manifest).is_dir()
    if isinstance(manifest, Manifest):
        man, base_dir, where = manifest, Path(manifest.base), manifest.name
    else:
        path = Path(manifest)
        if profile and not path.exists():
            raise ManifestError(f"{path}: no such folder or manifest file")
        if path.is_dir():
            if not profile:
                raise ManifestError(f"{path}: is a folder; give a manifest file, or a --profile to read the folder with")
            if profile == "bodyparts3d":
                parts = _parts_list(path, parts_list, required=False)
            man = manifest_for_folder(path, profile, name, skipped, parts)
            base_dir, where = path, str(path)
        else:
            man = load_manifest(path)
            base_dir, where = (path.parent / man.base).resolve(), str(path)
    if isinstance(manifest, Manifest) and not base_dir.is_absolute():
        base_dir = base_dir.resolve()
    if (profile or man.profile) == "bodyparts3d" and parts is None:
        parts = _parts_list(base_dir, parts_list, required=not path_is_folder)
    prof = profile or man.profile
    name = store.check_name(name or man.name)
    if save and not force and store.imported_path(name).exists():
        raise ManifestError(f"atlas {name!r} already exists ({store.imported_path(name)}); "
                            "choose another --name or add --force to replace it")
    if man.profile is None and prof is not None:
        man = man.model_copy(update={"profile": prof})

    structures: list[Structure] = []
    clean_reports = {}
    n = len(man.structures)
    seen = set()
    for i, spec in enumerate(man.structures):
        fpath = (base_dir / spec.file)
        progress(f"reading {spec.file}", 0.55 * i / n)
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
        muscle = spec.muscle or (ident.muscle if ident else None)
        inn, muscle = _innervation(spec, muscle, f"{where}: structures[{i}] ({spec.file})")
        kind = spec.kind or ident.kind
        match = spec.match or (ident.match if ident and ident.match else None) or sid
        s = Structure(
            id=sid,
            name=spec.name or ident.name,
            kind=kind,
            side=spec.side or ident.side,
            region=spec.region or (ident.region if ident and ident.region else "") or "",
            vertices=v,  # still in the source frame; mapped below once the frame is known
            faces=f.astype(np.int32),
            level=spec.level or (ident.level if ident else None),
            muscle=muscle,
            innervation=inn,
            harm=spec.harm,
            source=f"{man.name}: {spec.file}",
            aliases=tuple(a for a in (spec.fma_id or fma,) if a),
            meta={"file": spec.file, "clean": rep.as_dict(), "watertight": rep.watertight,
                  "match": match, **({"fma_id": spec.fma_id or fma} if (spec.fma_id or fma) else {})},
        )
        structures.append(s)
        clean_reports[sid] = rep.as_dict()

    # ---- the source frame: stated, detected, or both ---------------------------------
    progress("deciding the source frame", 0.6)
    if reference is None:
        reference = store.load_builtin()
    frame = decide_frame(structures, reference, man, prof, where)
    M = frame_matrix(frame["units"], frame["axes"])
    flip = np.linalg.det(M) < 0
    for s in structures:
        s.vertices = s.vertices @ M.T
        if flip:
            s.faces = s.faces[:, ::-1].copy()

    # ---- alignment -----------------------------------------------------------------
    progress("aligning to the built-in skeleton", 0.65)
    if reference is None:
        reference = store.load_builtin()
    fit = align(structures, reference, man, M)
    _check_turn(fit, frame, where)
    T = Similarity(np.array(fit["transform"]["matrix"]), np.array(fit["transform"]["translation_mm"]),
                   fit["transform"]["scale"])
    for s in structures:
        s.vertices = T.apply(s.vertices)

    progress("fitting body segments", 0.75)
    staged = man.align.method == "icp" and fit.get("fitted_on") == "bones"
    rigid = per_structure_fit(Atlas(name, structures), reference) if staged else None
    if staged:
        segs = fit_segments(structures, reference, max(man.align.iterations, 200))
        used: dict[str, list[str]] = {}
        for s in structures:
            s.vertices, share = segs.apply(s, s.vertices)
            s.meta["segments"] = share
            for seg in share:
                used.setdefault(seg, []).append(s.id)
        fit["segments"] = {k: {**seg.as_dict(), "structures": used[k]} for k, seg in segs.segments.items() if k in used}
        fit["joints"] = {side: {j: [round(float(x), 2) for x in p] for j, p in js.items()}
                         for side, js in segs.joints.items()}
    else:
        fit["segments"] = {}

    progress("measuring the fit", 0.8)
    atlas = Atlas(name, structures, attributions=[Attribution(a.source, a.licence, a.attribution, a.url)
                                                  for a in man.attributions])
    fit["structures"] = per_structure_fit(atlas, reference)
    fit["stages"] = stage_report(atlas, reference, rigid, fit["structures"])
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
        "frame": frame,
        "fit": fit,
        "skipped_files": [{"file": f, "reason": r} for f, r in skipped],
        "description": man.description,
        "import_seconds": round(time.perf_counter() - t0, 2),
    })
    if save:
        atlas.save(store.imported_path(name))
    progress("done", 1.0)
    return atlas


def _parts_list(base_dir: Path, parts_list, required: bool = True) -> dict | None:
    """A BodyParts3D parts list (given, or found in the folder). In a folder it is optional:
    files whose names carry their FMA name need none, the others are skipped."""
    from .profiles import read_parts_list

    cand = [Path(parts_list)] if parts_list else sorted(base_dir.glob("*element_parts.txt")) + sorted(base_dir.glob("*parts*.csv"))
    if (not cand or not cand[0].is_file()) and not required and not parts_list:
        return None
    if not cand or not cand[0].is_file():
        raise ManifestError(f"{base_dir}: the bodyparts3d profile needs the data set's parts list "
                            "(isa_element_parts.txt or a CSV name,fma_id,fj_file)")
    return read_parts_list(cand[0])


def decide_frame(structures: list[Structure], reference: Atlas, man: Manifest, profile: str | None, where: str) -> dict:
    """The source frame (units, axes) and how it was decided, as the report stores it.

    * stated (manifest ``frame`` not ``auto``): used, and checked by detection; a sure
      detection that disagrees is an error (the manifest is wrong, or says ``auto``);
    * ``auto``: detected from the anatomy (:func:`.frame.detect_frame`); when detection is
      not sure, a profile's documented frame for the data set is used and the report says
      so; with no profile the import refuses.
    """
    from .frame import detect_frame, handedness
    from .profiles import profile_frame

    items = [(s.meta.get("match", s.id), s.side, s.vertices.mean(0)) for s in structures]
    det = detect_frame(items, reference)
    units, axes = man.frame.units, man.frame.axes
    out = {"detected": det.as_dict()}
    summary = "; ".join(det.evidence[:1])
    if units != "auto" and axes != "auto":
        out.update(units=units, axes=axes, how="stated", confidence=det.confidence if det.sure else None)
        if det.sure and (det.axes != axes or det.units != units):
            raise ManifestError(
                f"{where}: frame: stated as {units} {axes}, but the anatomy says {det.units} {det.axes} "
                f"(sure {det.confidence:.2f}: {summary}); fix frame.units/frame.axes or set them to auto")
        out["note"] = ("checked: the anatomy agrees" if det.sure else
                       "not checked: the anatomy does not say for sure (" + "; ".join(det.evidence[:1]) + ")")
    else:
        documented = profile_frame(profile, [s.meta["file"] for s in structures]) if profile else None
        if det.sure:
            u = det.units if units == "auto" else units
            a = det.axes if axes == "auto" else axes
            out.update(units=u, axes=a, how="detected", confidence=det.confidence)
            if documented and (documented["axes"], documented["units"]) != (a, u):
                out["note"] = (f"the {profile} profile documents {documented['units']} {documented['axes']} for "
                               "these files; the anatomy overrides it")
            elif documented:
                out["note"] = f"agrees with the {profile} profile's documented frame"
        elif documented:
            u = documented["units"] if units == "auto" else units
            a = documented["axes"] if axes == "auto" else axes
            out.update(units=u, axes=a, how="documented", confidence=det.confidence,
                       note=f"the anatomy does not say for sure ({'; '.join(det.evidence[:1])}); "
                            f"used the {profile} profile's documented frame")
        else:
            raise ManifestError(
                f"{where}: frame: cannot tell the source frame from the anatomy ({'; '.join(det.evidence[:1])}, "
                f"sure {det.confidence:.2f}); state frame.units and frame.axes in the manifest")
    out["handedness"] = handedness(out["axes"])
    return out


#: after the frame is decided, the registration only has to correct a pose; a larger turn
#: means the frame is wrong, so the import refuses rather than let ICP spin the body round
MAX_TURN_DEG = 60.0


def _check_turn(fit: dict, frame: dict, where: str) -> None:
    ang = fit.get("transform", {}).get("rotation_deg", 0.0)
    if fit.get("method") != "none" and ang > MAX_TURN_DEG:
        raise ImportFailed(f"{where}: aligning needed a {ang:.0f} deg turn after mapping the source frame "
                           f"{frame['units']} {frame['axes']} ({frame['how']}): the frame is probably wrong; "
                           "state frame.axes in a manifest")


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
        # stage (a): the skeleton carries the body; muscles differ between people and data
        # sets, so with two or more shared bones only the bones are fitted (the muscles'
        # overlap is then a measure of the fit, not what it optimised)
        bones = [(a, b) for a, b in pairs if a.kind == "bone"]
        fitted = bones if use is None and len(bones) >= 2 else pairs
        out["fitted_on"] = "bones" if fitted is bones else "all structures"
        out["fitted"] = [a.id for a, _ in fitted]
        sets = [(surface_points(a.vertices, a.faces, 400, seed=k), surface_points(b.vertices, b.faces, 3000, seed=k))
                for k, (a, b) in enumerate(fitted)]
        T, rms, its = icp(sets, T0, man.align.scale, man.align.iterations)
    out["transform"] = T.as_dict()
    out["rms_mm"] = rms
    out["iterations"] = its
    return out


def per_structure_fit(atlas: Atlas, reference: Atlas, overlap: bool = True) -> dict:
    """Per structure: centroid distance to its built-in counterpart and volume overlap."""
    res = {}
    for s in atlas:
        m = s.meta.get("match", s.id)
        if m not in reference.structures:
            continue
        r = reference.structures[m]
        d = {"counterpart": m, "kind": s.kind, "centroid_distance_mm": float(np.linalg.norm(s.centroid - r.centroid)),
             "volume_mm3": float(s.volume), "counterpart_volume_mm3": float(r.volume)}
        if s.meta.get("segments"):
            d["segments"] = dict(s.meta["segments"])
            d["stage"] = "segment " + max(d["segments"], key=d["segments"].get)
        if same_source(s, r):
            d["same_source"] = True
        if overlap:
            d.update(voxel_overlap(s.vertices, s.faces, r.vertices, r.faces))
        res[s.id] = d
    return res


def same_source(s: Structure, r: Structure) -> bool:
    """The reference structure was made from the same source file (the built-in body's
    vastus lateralis, biceps femoris and gastrocnemius are the Visible Human meshes,
    registered): its overlap says how the registrations agree, not how two bodies do."""
    f = s.meta.get("file")
    return bool(f) and Path(f).name in {Path(x).name for x in (r.meta.get("source_files") or [])}


def _summary(rows: dict, key_ok=lambda d: True) -> dict:
    ok = {k: d for k, d in rows.items() if key_ok(d)}
    if not ok:
        return {"n": 0}
    dice = np.array([d["dice"] for d in ok.values()])
    dist = np.array([d["centroid_distance_mm"] for d in ok.values()])
    worst = sorted(ok, key=lambda k: (ok[k]["dice"], -ok[k]["centroid_distance_mm"]))[:5]
    return {"n": len(ok), "median_dice": float(np.median(dice)), "median_centroid_mm": float(np.median(dist)),
            "mean_dice": float(dice.mean()), "max_centroid_mm": float(dist.max()),
            "worst": [{"structure": k, "dice": ok[k]["dice"], "centroid_distance_mm": ok[k]["centroid_distance_mm"]}
                      for k in worst]}


def stage_report(atlas: Atlas, reference: Atlas, rigid: dict | None, final: dict) -> dict:
    """Per-muscle overlap after each stage: ``rigid`` (stage a: one similarity on the bones)
    and ``segment`` (stage b: per body segment); each muscle's rows get ``rigid`` figures
    beside the final ones. Summaries (median Dice, median centroid distance, worst 5) over
    all muscles present in both, and over the ``independent`` ones (not made from the same
    source file as their counterpart)."""
    musc = {k: d for k, d in final.items() if d.get("kind") == "muscle"}
    indep = lambda d: not d.get("same_source")  # noqa: E731
    out = {}
    if rigid is not None:
        rm = {k: d for k, d in rigid.items() if d.get("kind") == "muscle"}
        for k, d in final.items():
            if k in rigid:
                d["rigid"] = {"dice": rigid[k]["dice"], "centroid_distance_mm": rigid[k]["centroid_distance_mm"]}
        out["rigid"] = {"muscles": _summary(rm), "independent": _summary(rm, indep)}
        out["segment"] = {"muscles": _summary(musc), "independent": _summary(musc, indep)}
    else:
        out["final"] = {"muscles": _summary(musc), "independent": _summary(musc, indep)}
    return out


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
