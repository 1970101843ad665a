"""The anatomy atlas model: structures, landmarks and their metadata.

Everything is in millimetres in imssim's patient frame (LPS: +X patient's left,
+Y posterior, +Z superior); see ``docs/coordinates.md``.

An :class:`Atlas` is plain data (numpy arrays plus small dataclasses). It is built
by a builder (``imssim.core.model.build``) or an importer, saved to a cache file and
loaded back quickly. It never imports a GUI or rendering library.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

#: The kinds of structure an atlas holds.
KINDS = (
    "bone",
    "muscle",
    "skin",
    "subcutaneous",
    "organ",
    "nerve",
    "vessel",
    "canal",
    "connective",
)
SIDES = ("left", "right", "midline")
#: Harms a danger structure stands for.
HARMS = (
    "pneumothorax",
    "cord injury",
    "vascular injury",
    "nerve injury",
    "organ puncture",
)

#: Spinal segments in cranio-caudal order (C1..C8, T1..T12, L1..L5, S1..S5, Co1).
SEGMENTS: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 9))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + tuple(f"S{i}" for i in range(1, 6))
)
#: Vertebral levels (no C8: the C8 root exits below C7).
VERTEBRAE: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
)


def segment_index(seg: str) -> int:
    """Position of a spinal segment in cranio-caudal order (raises ValueError)."""
    try:
        return SEGMENTS.index(seg.upper())
    except ValueError:
        raise ValueError(f"unknown spinal segment {seg!r}; expected one of C1-C8, T1-T12, L1-L5, S1-S5") from None


def segment_range(first: str, last: str) -> list[str]:
    """Segments from ``first`` to ``last`` inclusive, e.g. ("L4", "S1")."""
    a, b = segment_index(first), segment_index(last)
    if a > b:
        a, b = b, a
    return list(SEGMENTS[a : b + 1])


def level_distance(a: str, b: str) -> int:
    """Number of vertebral levels between two segments (signed, b - a).

    Cervical roots are numbered one past their vertebra (C8 exits below C7), so
    the distance counts segments: ``level_distance("L3", "L5") == 2``.
    """
    return segment_index(b) - segment_index(a)


@dataclass(frozen=True)
class Innervation:
    """Which nerve and spinal roots supply a muscle, and where that fact comes from."""

    nerve: str
    roots: tuple[str, ...]
    dominant: str | None
    source: str

    def to_dict(self) -> dict:
        return {"nerve": self.nerve, "roots": list(self.roots), "dominant": self.dominant, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "Innervation":
        return cls(d["nerve"], tuple(d["roots"]), d.get("dominant"), d.get("source", ""))


@dataclass
class Structure:
    """One anatomical structure with a closed triangle mesh (mm, LPS)."""

    id: str
    name: str
    kind: str
    side: str
    region: str
    vertices: np.ndarray  # (n, 3) float64, mm
    faces: np.ndarray  # (m, 3) int32
    level: str | None = None  # vertebra or segmental muscle fascicle level
    muscle: str | None = None  # canonical muscle name, e.g. "gluteus medius"
    innervation: Innervation | None = None
    harm: str | None = None  # set for danger structures
    source: str = ""
    aliases: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    @property
    def is_danger(self) -> bool:
        return self.harm is not None

    @property
    def segments(self) -> list[str]:
        """Spinal segments this structure belongs to (multifidus: its level; others: roots)."""
        if self.kind == "muscle" and self.level:
            return [self.level]
        if self.innervation:
            return list(self.innervation.roots)
        return [self.level] if self.level else []

    @property
    def bounds(self) -> np.ndarray:
        return np.array([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    @property
    def centroid(self) -> np.ndarray:
        """Volume centroid of the closed mesh (falls back to the vertex mean)."""
        v, f = self.vertices, self.faces
        if len(f) == 0:
            return v.mean(axis=0)
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        vol6 = np.einsum("ij,ij->i", a, np.cross(b, c))
        tot = vol6.sum()
        if abs(tot) < 1e-9:
            return v.mean(axis=0)
        return ((a + b + c) * vol6[:, None]).sum(axis=0) / (4.0 * tot)

    @property
    def volume(self) -> float:
        """Signed-sum volume in mm^3 (positive for outward-facing closed meshes)."""
        v, f = self.vertices, self.faces
        if len(f) == 0:
            return 0.0
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)

    def meta_dict(self) -> dict:
        d = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "side": self.side,
            "region": self.region,
            "level": self.level,
            "muscle": self.muscle,
            "innervation": self.innervation.to_dict() if self.innervation else None,
            "harm": self.harm,
            "source": self.source,
            "aliases": list(self.aliases),
            "meta": self.meta,
            "n_vertices": int(len(self.vertices)),
            "n_faces": int(len(self.faces)),
        }
        return d


@dataclass(frozen=True)
class Landmark:
    """A named point that scenarios and needles can be placed by (mm, LPS)."""

    id: str
    name: str
    position: tuple[float, float, float]
    structure: str | None = None  # id of the structure it lies on
    description: str = ""

    @property
    def xyz(self) -> np.ndarray:
        return np.asarray(self.position, dtype=float)


@dataclass(frozen=True)
class Attribution:
    """Where a part of the atlas came from and under which licence."""

    source: str
    licence: str
    attribution: str
    url: str = ""


class AtlasLookupError(KeyError):
    """A structure or landmark name that the atlas does not know (with suggestions)."""

    def __init__(self, what: str, name: str, suggestions: list[str]):
        self.what, self.name, self.suggestions = what, name, suggestions
        msg = f"unknown {what} {name!r}"
        if suggestions:
            msg += f"; did you mean {', '.join(repr(s) for s in suggestions)}?"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


def _norm(s: str) -> str:
    return " ".join(s.lower().replace("_", " ").replace("-", " ").split())


class Atlas:
    """A set of structures and landmarks in one frame (mm, LPS)."""

    FORMAT_VERSION = 1

    def __init__(
        self,
        name: str,
        structures: Iterable[Structure] = (),
        landmarks: Iterable[Landmark] = (),
        attributions: Iterable[Attribution] = (),
        meta: dict | None = None,
    ):
        self.name = name
        self.structures: dict[str, Structure] = {}
        self.landmarks: dict[str, Landmark] = {}
        self.attributions: list[Attribution] = list(attributions)
        self.meta: dict = dict(meta or {})
        #: named voxel volumes kept with the atlas (e.g. ``fill``: the tissue between the meshes)
        self.volumes: dict[str, np.ndarray] = {}
        self._index: dict[str, str] = {}
        self._lm_index: dict[str, str] = {}
        for s in structures:
            self.add(s)
        for lm in landmarks:
            self.add_landmark(lm)

    # -- building ---------------------------------------------------------
    def add(self, s: Structure) -> Structure:
        if s.kind not in KINDS:
            raise ValueError(f"structure {s.id!r}: kind {s.kind!r} is not one of {KINDS}")
        if s.side not in SIDES:
            raise ValueError(f"structure {s.id!r}: side {s.side!r} is not one of {SIDES}")
        if s.harm is not None and s.harm not in HARMS:
            raise ValueError(f"structure {s.id!r}: harm {s.harm!r} is not one of {HARMS}")
        if s.id in self.structures:
            raise ValueError(f"duplicate structure id {s.id!r}")
        s.vertices = np.ascontiguousarray(s.vertices, dtype=np.float64)
        s.faces = np.ascontiguousarray(s.faces, dtype=np.int32)
        self.structures[s.id] = s
        for key in (s.id, s.name, *s.aliases):
            self._index.setdefault(_norm(key), s.id)
        return s

    def remove(self, sid: str) -> None:
        s = self.structures.pop(sid)
        self._index = {k: v for k, v in self._index.items() if v != s.id}

    def add_landmark(self, lm: Landmark) -> Landmark:
        if lm.id in self.landmarks:
            raise ValueError(f"duplicate landmark id {lm.id!r}")
        self.landmarks[lm.id] = lm
        for key in (lm.id, lm.name):
            self._lm_index.setdefault(_norm(key), lm.id)
        return lm

    # -- lookup -----------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return _norm(name) in self._index

    def __iter__(self) -> Iterator[Structure]:
        return iter(self.structures.values())

    def __len__(self) -> int:
        return len(self.structures)

    def get(self, name: str) -> Structure:
        """A structure by id, name or alias (case and ``_``/``-`` insensitive)."""
        sid = self._index.get(_norm(name))
        if sid is None:
            raise AtlasLookupError("structure", name, self.suggest(name))
        return self.structures[sid]

    def suggest(self, name: str, n: int = 3) -> list[str]:
        keys = list(self._index)
        hits = difflib.get_close_matches(_norm(name), keys, n=n, cutoff=0.6)
        out: list[str] = []
        for h in hits:
            sid = self.structures[self._index[h]].id
            if sid not in out:
                out.append(sid)
        return out

    def landmark(self, name: str) -> Landmark:
        lid = self._lm_index.get(_norm(name))
        if lid is None:
            hits = difflib.get_close_matches(_norm(name), list(self._lm_index), n=3, cutoff=0.6)
            raise AtlasLookupError("landmark", name, sorted({self._lm_index[h] for h in hits}))
        return self.landmarks[lid]

    def find(
        self,
        kind: str | None = None,
        region: str | None = None,
        side: str | None = None,
        muscle: str | None = None,
        level: str | None = None,
        danger: bool | None = None,
    ) -> list[Structure]:
        out = []
        for s in self.structures.values():
            if kind and s.kind != kind:
                continue
            if region and s.region != region:
                continue
            if side and s.side != side:
                continue
            if muscle and (s.muscle or "") != muscle:
                continue
            if level and s.level != level:
                continue
            if danger is not None and s.is_danger != danger:
                continue
            out.append(s)
        return out

    def muscles_for_segment(self, segment: str) -> list[Structure]:
        """Muscles whose roots include ``segment`` (peripheral) or whose level is it."""
        segment = segment.upper()
        return [s for s in self.find(kind="muscle") if segment in s.segments]

    @property
    def bounds(self) -> np.ndarray:
        lo = np.min([s.vertices.min(axis=0) for s in self.structures.values()], axis=0)
        hi = np.max([s.vertices.max(axis=0) for s in self.structures.values()], axis=0)
        return np.array([lo, hi])

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for s in self.structures.values():
            kinds[s.kind] = kinds.get(s.kind, 0) + 1
        return {
            "name": self.name,
            "structures": len(self.structures),
            "by_kind": kinds,
            "landmarks": len(self.landmarks),
            "triangles": int(sum(len(s.faces) for s in self.structures.values())),
            "vertices": int(sum(len(s.vertices) for s in self.structures.values())),
            "danger_structures": sorted(s.id for s in self.structures.values() if s.is_danger),
            # where each muscle comes from (the built-in body: BodyParts3D, else a stated route)
            "muscle_sources": {
                src: sorted({s.muscle or s.id for s in self.structures.values() if s.kind == "muscle" and s.source == src})
                if src != "BodyParts3D" else len([s for s in self.structures.values() if s.kind == "muscle" and s.source == src])
                for src in sorted({s.source for s in self.structures.values() if s.kind == "muscle"})
            },
            "attributions": [asdict(a) for a in self.attributions],
            "meta": self.meta,
        }

    # -- persistence ------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the atlas to one ``.npz`` file (atomic: temp file then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = list(self.structures)
        verts = [self.structures[i].vertices.astype(np.float32) for i in ids]
        faces = [self.structures[i].faces for i in ids]
        voff = np.cumsum([0] + [len(v) for v in verts]).astype(np.int64)
        foff = np.cumsum([0] + [len(f) for f in faces]).astype(np.int64)
        header = {
            "format": self.FORMAT_VERSION,
            "name": self.name,
            "meta": self.meta,
            "structures": [self.structures[i].meta_dict() for i in ids],
            "landmarks": [asdict(lm) for lm in self.landmarks.values()],
            "attributions": [asdict(a) for a in self.attributions],
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                vertices=np.concatenate(verts) if verts else np.zeros((0, 3), np.float32),
                faces=np.concatenate(faces) if faces else np.zeros((0, 3), np.int32),
                voff=voff,
                foff=foff,
                **{f"vol_{k}": v for k, v in self.volumes.items()},
            )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Atlas":
        """Read an atlas written by :meth:`save`; raises ``AtlasFileError`` if it cannot be
        read or does not validate (header keys and types, array shapes, face index ranges,
        finite coordinates), so a damaged cache is always reported the same way."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                from ..safefile import loads_json

                raw = z["header"]
                if raw.dtype != np.uint8 or raw.ndim != 1:
                    raise ValueError("header is not a byte string")
                header = loads_json(bytes(raw).decode("utf-8"), f"{path}: header")
                V, F, voff, foff = z["vertices"], z["faces"], z["voff"], z["foff"]
                volumes = {k[4:]: z[k] for k in z.files if k.startswith("vol_")}
        except Exception as e:  # noqa: BLE001 - any failure to read is a corrupt file
            raise AtlasFileError(f"{path}: not a readable imssim atlas ({type(e).__name__}: {e})") from None
        if not isinstance(header, dict) or header.get("format") != cls.FORMAT_VERSION:
            got = header.get("format") if isinstance(header, dict) else None
            raise AtlasFileError(f"{path}: atlas format {got} is not {cls.FORMAT_VERSION}")
        try:
            _check_arrays(header, V, F, voff, foff)
            atlas = cls(_typed(header["name"], str, "name"), meta=_typed(header.get("meta", {}), dict, "meta"))
            atlas.attributions = [Attribution(**a) for a in _typed(header.get("attributions", []), list, "attributions")]
            for i, d in enumerate(header["structures"]):
                inn = Innervation.from_dict(d["innervation"]) if d.get("innervation") else None
                atlas.add(
                    Structure(
                        id=_typed(d["id"], str, f"structures[{i}].id"),
                        name=_typed(d["name"], str, f"structures[{i}].name"),
                        kind=d["kind"],
                        side=d["side"],
                        region=_typed(d["region"], str, f"structures[{i}].region"),
                        vertices=V[voff[i] : voff[i + 1]].astype(np.float64),
                        faces=F[foff[i] : foff[i + 1]],
                        level=d.get("level"),
                        muscle=d.get("muscle"),
                        innervation=inn,
                        harm=d.get("harm"),
                        source=d.get("source", ""),
                        aliases=tuple(d.get("aliases", ())),
                        meta=_typed(d.get("meta", {}), dict, f"structures[{i}].meta"),
                    )
                )
            for lm in _typed(header.get("landmarks", []), list, "landmarks"):
                pos = np.asarray(lm["position"], float)
                if pos.shape != (3,) or not np.isfinite(pos).all():
                    raise ValueError(f"landmark {lm.get('id')!r}: position is not three finite numbers")
                lm["position"] = tuple(float(x) for x in pos)
                atlas.add_landmark(Landmark(**lm))
            for k, vol in volumes.items():
                want = _typed(atlas.meta.get(k), dict, f"meta.{k}").get("shape")
                if vol.ndim != 3 or list(vol.shape) != list(want or ()):
                    raise ValueError(f"volume {k!r} has shape {vol.shape}, header says {want}")
                atlas.volumes[k] = vol
        except Exception as e:  # noqa: BLE001 - header keys/types, shapes, ranges
            raise AtlasFileError(f"{path}: damaged imssim atlas ({type(e).__name__}: {e})") from None
        return atlas


def _typed(v, t, what):
    if not isinstance(v, t):
        raise TypeError(f"{what}: expected {t.__name__}, got {type(v).__name__}")
    return v


def _check_arrays(header, V, F, voff, foff) -> None:
    """Raise ValueError unless an atlas file's arrays are consistent with its header."""
    structs = _typed(header.get("structures"), list, "structures")
    if not all(isinstance(d, dict) for d in structs):
        raise TypeError("structures: expected a list of mappings")
    n = len(structs)
    if V.ndim != 2 or V.shape[1] != 3 or V.dtype.kind != "f":
        raise ValueError(f"vertices: expected (n, 3) floats, got {V.shape} {V.dtype}")
    if F.ndim != 2 or F.shape[1] != 3 or F.dtype.kind not in "iu":
        raise ValueError(f"faces: expected (m, 3) integers, got {F.shape} {F.dtype}")
    for nm, off, total in (("voff", voff, len(V)), ("foff", foff, len(F))):
        if off.shape != (n + 1,) or off.dtype.kind not in "iu":
            raise ValueError(f"{nm}: expected {n + 1} integer offsets, got {off.shape} {off.dtype}")
        if n + 1 and (off[0] != 0 or off[-1] != total or (np.diff(off) < 0).any()):
            raise ValueError(f"{nm}: offsets do not split the {total} rows")
    if not np.isfinite(V).all():
        raise ValueError("vertices: not all coordinates are finite")
    if len(F):
        nv = np.diff(voff)
        per_face = np.repeat(nv, np.diff(foff))
        if (F.min(axis=1) < 0).any() or (F.max(axis=1) >= per_face).any():
            bad = int(np.nonzero((F.min(axis=1) < 0) | (F.max(axis=1) >= per_face))[0][0])
            raise ValueError(f"faces: face {bad} indexes a vertex outside its structure")


class AtlasFileError(RuntimeError):
    """An atlas file that is missing, corrupt or of another format version."""
