"""Registration of an imported body to the built-in skeleton, and how well it fits.

After the manifest's unit and axis mapping the imported structures are in millimetres LPS
but still in their own place, size and pose. The fit is a similarity transform (rotation,
translation, one uniform scale), found in two steps:

1. Initialisation: Umeyama's closed-form similarity between corresponding points, either
   the manifest's landmarks (source position -> the built-in landmark of the same id) or,
   by default, the centroids of structures that have a built-in counterpart of the same id
   (three or more non-collinear ones are needed; with fewer only a translation is used).
2. ICP, structure by structure: surface points of each imported structure are paired with
   the nearest surface points *of its own counterpart* (a k-d tree per counterpart), the
   worst 10 % of pairs are trimmed, and Umeyama's solution for all pairs is applied; this
   is repeated until the RMS stops improving. With two or more bones that both bodies
   have, only the bones take part (stage a); :mod:`.segments` then refines the fit per
   body segment (stage b).

The fit report gives the RMS of the final point pairs and, per structure, the distance
between its centroid and the counterpart's and the volume overlap (Dice and IoU on a voxel
grid, by point-in-mesh tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class Similarity:
    """x -> scale * R @ x + t."""

    R: np.ndarray
    t: np.ndarray
    scale: float = 1.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(x, float) @ self.R.T) + self.t

    def then(self, other: "Similarity") -> "Similarity":
        return Similarity(other.R @ self.R, other.scale * (self.t @ other.R.T) + other.t, self.scale * other.scale)

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(np.eye(3), np.zeros(3), 1.0)

    def as_dict(self) -> dict:
        ang = float(np.degrees(np.arccos(np.clip((np.trace(self.R) - 1) / 2, -1, 1))))
        return {"scale": float(self.scale), "rotation_deg": ang, "translation_mm": [float(x) for x in self.t],
                "matrix": [[float(x) for x in row] for row in self.R]}


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity taking ``src`` points onto ``dst`` (no reflection)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    var_s = (a ** 2).sum() / len(src)
    s = float(np.trace(np.diag(S) @ D) / var_s) if with_scale and var_s > 0 else 1.0
    return Similarity(R, mu_d - s * (R @ mu_s), s)


def surface_points(v: np.ndarray, f: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` points spread over a mesh surface (area-weighted, deterministic)."""
    rng = np.random.default_rng(seed)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    if area.sum() <= 0:
        return v.copy()
    idx = rng.choice(len(f), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    pts = (1 - s)[:, None] * a[idx] + (s * (1 - r2))[:, None] * b[idx] + (s * r2)[:, None] * c[idx]
    return np.concatenate([pts, v[:: max(1, len(v) // n)]])


def icp(pairs: list[tuple[np.ndarray, np.ndarray]], init: Similarity, with_scale: bool = True,
        iterations: int = 40, trim: float = 0.1) -> tuple[Similarity, float, int]:
    """Structure-wise ICP: each source point set is matched only to its own target set."""
    trees = [cKDTree(t) for _, t in pairs]
    T = init
    last = np.inf
    rms = np.inf
    it = 0
    for it in range(1, iterations + 1):
        S, D = [], []
        for (src, tgt), tree in zip(pairs, trees):
            p = T.apply(src)
            _, j = tree.query(p)
            S.append(src)
            D.append(tgt[j])
        S, D = np.concatenate(S), np.concatenate(D)
        d = np.linalg.norm(T.apply(S) - D, axis=1)
        keep = d <= np.quantile(d, 1 - trim)
        rms = float(np.sqrt(np.mean(d[keep] ** 2)))
        T = umeyama(S[keep], D[keep], with_scale)
        if last - rms < 1e-3 * max(rms, 1e-9):
            break
        last = rms
    # final residual with the final transform
    S, D = [], []
    for (src, tgt), tree in zip(pairs, trees):
        p = T.apply(src)
        dd, _ = tree.query(p)
        S.append(dd)
    d = np.concatenate(S)
    rms = float(np.sqrt(np.mean(d ** 2)))
    return T, rms, it


def voxel_overlap(va, fa, vb, fb, max_points: int = 60000) -> dict:
    """Dice and IoU of two closed meshes' volumes on a voxel grid over their joint box."""
    import trimesh

    lo = np.minimum(va.min(0), vb.min(0))
    hi = np.maximum(va.max(0), vb.max(0))
    ext = hi - lo
    step = max(float((np.prod(ext) / max_points) ** (1 / 3)), 0.5)
    axes = [np.arange(lo[k] + step / 2, hi[k], step) for k in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    ina = trimesh.Trimesh(va, fa, process=False).contains(grid)
    inb = trimesh.Trimesh(vb, fb, process=False).contains(grid)
    inter = float((ina & inb).sum())
    na, nb = float(ina.sum()), float(inb.sum())
    union = float((ina | inb).sum())
    return {"dice": 2 * inter / (na + nb) if na + nb else 0.0, "iou": inter / union if union else 0.0,
            "voxel_mm": step}
