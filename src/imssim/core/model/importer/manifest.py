"""The atlas manifest: a validated YAML description of an atlas to import.

See ``docs/import.md`` for the format with an example. Validation uses pydantic v2;
YAML is read with the safe loader of :func:`imssim.core.model.data.read_yaml` (plain data only,
size-limited). Every error names the manifest file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..atlas import KINDS, SEGMENTS

#: Length units a source may use, with their size in millimetres.
UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4, "um": 0.001}
#: Patient directions an axis may point to, as (imssim axis index, sign) in LPS.
DIRECTIONS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
#: File types the importer reads.
MESH_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf", ".vtp", ".vtk", ".off")


class ManifestError(ValueError):
    """A manifest that cannot be read or does not validate (message names file and field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AttributionSpec(_Strict):
    """Licence and attribution of (part of) the data: required, shown in the credits view."""

    source: str = Field(min_length=1)
    licence: str = Field(min_length=1)
    attribution: str = Field(min_length=1)
    url: str = ""


class FrameSpec(_Strict):
    """The source's frame: its length unit and where its +X, +Y, +Z axes point.

    ``axes`` is three letters from L/R, A/P, S/I, one per source axis: ``LPS`` is imssim's
    own frame, ``LAI`` means +X to the patient's left, +Y anterior, +Z inferior.
    ``auto`` (for either): detected from the anatomy (:mod:`.frame`); the import refuses
    when the detection is not sure. A stated frame is checked the same way.
    """

    units: Literal["mm", "cm", "m", "in", "um", "auto"] = "mm"
    axes: str = "LPS"

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: str) -> str:
        if v.lower() == "auto":
            return "auto"
        v = v.upper()
        if len(v) != 3 or any(c not in DIRECTIONS for c in v):
            raise ValueError("expected three letters from L/R, A/P, S/I, e.g. 'LPS' or 'LAI', or 'auto'")
        if len({DIRECTIONS[c][0] for c in v}) != 3:
            raise ValueError(f"{v!r} names the same body axis twice; use one of L/R, one of A/P, one of S/I")
        return v


class InnervationSpec(_Strict):
    nerve: str = Field(min_length=1)
    roots: list[str] = Field(min_length=1)
    dominant: str | None = None
    source: str = "manifest"

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        v = [r.upper() for r in v]
        bad = [r for r in v if r not in SEGMENTS]
        if bad:
            raise ValueError(f"unknown spinal segment(s) {bad}; expected C1-C8, T1-T12, L1-L5, S1-S5")
        return v


class StructureSpec(_Strict):
    """One structure: its mesh file and what it is.

    With a ``profile`` the importer fills ``id``/``name``/``kind``/``side``/``muscle`` from
    the file name (or FMA id) when they are left out here.
    """

    file: str = Field(min_length=1)
    id: str | None = None
    name: str | None = None
    kind: str | None = None
    side: Literal["left", "right", "midline"] | None = None
    region: str | None = None
    level: str | None = None
    muscle: str | None = None  # canonical muscle name: innervation comes from the built-in data
    innervation: InnervationSpec | None = None
    fma_id: str | None = None
    sha256: str | None = None
    match: str | None = None  # built-in counterpart used for alignment (default: same id)
    harm: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_@.\-]+", v):
            raise ValueError("ids use letters, digits, '_', '-', '.' only")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v is not None and v not in KINDS:
            raise ValueError(f"expected one of {', '.join(KINDS)}")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v):
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ValueError("expected 64 hexadecimal digits")
        return v.lower() if v else v

    @field_validator("file")
    @classmethod
    def _suffix(cls, v):
        if not v.lower().endswith(MESH_SUFFIXES):
            raise ValueError(f"unsupported mesh type; expected one of {', '.join(MESH_SUFFIXES)}")
        return v


class AlignSpec(_Strict):
    """How the imported body is registered to the built-in skeleton."""

    method: Literal["icp", "centroids", "none"] = "icp"
    scale: bool = True  # uniform scale allowed
    iterations: int = Field(default=40, ge=1, le=500)
    #: structure ids used for the fit (default: every structure with a built-in counterpart)
    use: list[str] | None = None
    #: optional source-frame landmarks (imssim landmark id -> [x, y, z] in source units/axes)
    landmarks: dict[str, list[float]] = Field(default_factory=dict)

    @field_validator("landmarks")
    @classmethod
    def _lm(cls, v):
        for k, p in v.items():
            if len(p) != 3:
                raise ValueError(f"landmark {k!r}: expected [x, y, z]")
        return v


class Manifest(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    profile: Literal["vhm", "bodyparts3d", "zanatomy"] | None = None
    attributions: list[AttributionSpec] = Field(min_length=1)
    frame: FrameSpec = Field(default_factory=FrameSpec)
    base: str = "."  # folder that relative file paths start from (relative to the manifest)
    #: target triangle count per structure; meshes above it are decimated (0: never)
    decimate: int = Field(default=4000, ge=0)
    align: AlignSpec = Field(default_factory=AlignSpec)
    #: "builtin": add every built-in structure the import lacks (skin, spine, ...), so
    #: scenarios written for the whole body run on a partial dataset
    fill: Literal["none", "builtin"] = "none"
    structures: list[StructureSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self):
        if self.profile is None:
            for i, s in enumerate(self.structures):
                missing = [f for f in ("id", "name", "kind", "side") if getattr(s, f) is None]
                if missing:
                    raise ValueError(f"structures[{i}] ({s.file}): missing {', '.join(missing)} (or set a profile)")
        return self


def _loc(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate(data, source: str = "manifest") -> Manifest:
    """Validate plain data as a manifest; ``ManifestError`` names ``source`` and the field."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a mapping with name, attributions, frame, structures")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        errs = e.errors()
        parts = []
        for err in errs[:5]:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"field {_loc(tuple(err['loc']))}: {msg}")
        more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
        raise ManifestError(f"{source}: " + "; ".join(parts) + more) from None


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest YAML file."""
    from ..data import read_yaml

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    try:
        data = read_yaml(path)
    except Exception as e:  # ruamel errors, decoding, size limit
        raise ManifestError(f"{path}: not readable YAML ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return validate(data, str(path))
