"""Compiled kernels of the needle traversal (numba): a BVH over every triangle of the
atlas, multi-hit segment casting, the whole inside/outside bookkeeping of
:meth:`imssim.core.engines.traversal.TissueIndex.query` and exact shaft/tip clearances.

Everything here works on plain arrays so one needle and a batch of needles (``prange``
over needles) run the same code. The rules are those of ``docs/needle.md``; the Python
reference (:meth:`TissueIndex.query_reference`) implements them the slow way and the
tests hold the two to 1e-6 mm on realistic poses.

Geometry is computed in float64 over the index's float32 triangles (the same numbers the
reference uses), so the crossings are exact to float64 rounding.

Compiled code is cached on disk by numba (``cache=True``; ``NUMBA_CACHE_DIR`` moves it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LEAF = 4
NB = 16  # SAH bins per axis
STACK = 128
MAX_HITS = 4096
TIE = 1e-9  # mm: crossings this close are the same place (ties are ordered by structure index)

# status codes of the needle kernel
OK = 0
FALLBACK = 1  # broken parity or an open mesh near the shaft: the Python rule decides
OVERFLOW = 2  # more crossings than the buffers hold

_opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


# -- BVH build ---------------------------------------------------------------------------
@njit(**_opts)
def build_bvh(tri):
    """A binary BVH over triangles ``tri`` (m, 3, 3) float32.

    Returns (perm, lo, hi, child, start, count): ``perm`` orders the triangles so every
    leaf is a contiguous run; node ``i`` has box lo[i]..hi[i]; an inner node's children
    are ``child[i]`` and ``child[i] + 1``; a leaf has child -1 and holds
    ``perm[start[i]:start[i] + count[i]]``. Split: binned surface-area heuristic on the
    centroids (half by count when that separates nothing)."""
    m = tri.shape[0]
    cen = np.empty((m, 3))
    tlo = np.empty((m, 3), np.float32)
    thi = np.empty((m, 3), np.float32)
    for i in range(m):
        for k in range(3):
            a, b, c = tri[i, 0, k], tri[i, 1, k], tri[i, 2, k]
            tlo[i, k] = min(a, b, c)
            thi[i, k] = max(a, b, c)
            cen[i, k] = (np.float64(a) + b + c) / 3.0
    perm = np.arange(m).astype(np.int64)
    cap = max(1, 2 * m)
    lo = np.empty((cap, 3), np.float32)
    hi = np.empty((cap, 3), np.float32)
    child = np.full(cap, -1, np.int64)
    start = np.zeros(cap, np.int64)
    count = np.zeros(cap, np.int64)
    st_node = np.empty(256, np.int64)
    st_s = np.empty(256, np.int64)
    st_e = np.empty(256, np.int64)
    sp = 0
    st_node[0], st_s[0], st_e[0] = 0, 0, m
    sp = 1
    n_nodes = 1
    while sp > 0:
        sp -= 1
        node, s, e = st_node[sp], st_s[sp], st_e[sp]
        blo = np.full(3, np.inf, np.float32)
        bhi = np.full(3, -np.inf, np.float32)
        clo = np.full(3, np.inf)
        chi = np.full(3, -np.inf)
        for j in range(s, e):
            t = perm[j]
            for k in range(3):
                blo[k] = min(blo[k], tlo[t, k])
                bhi[k] = max(bhi[k], thi[t, k])
                clo[k] = min(clo[k], cen[t, k])
                chi[k] = max(chi[k], cen[t, k])
        lo[node] = blo
        hi[node] = bhi
        if e - s <= LEAF:
            start[node], count[node] = s, e - s
            continue
        # binned surface-area heuristic: the split plane (of NB bins per axis) that
        # minimises sum(area(child box) * triangles(child))
        best_cost = np.inf
        best_ax = -1
        best_b = 0
        for ax in range(3):
            ext = chi[ax] - clo[ax]
            if ext <= 0.0:
                continue
            bcnt = np.zeros(NB, np.int64)
            bblo = np.full((NB, 3), np.inf)
            bbhi = np.full((NB, 3), -np.inf)
            for j in range(s, e):
                t = perm[j]
                b = min(int((cen[t, ax] - clo[ax]) / ext * NB), NB - 1)
                bcnt[b] += 1
                for k in range(3):
                    bblo[b, k] = min(bblo[b, k], tlo[t, k])
                    bbhi[b, k] = max(bbhi[b, k], thi[t, k])
            # sweep from the left and from the right
            larea = np.zeros(NB)
            lcnt = np.zeros(NB, np.int64)
            xlo = np.full(3, np.inf)
            xhi = np.full(3, -np.inf)
            c_ = 0
            for b in range(NB - 1):
                c_ += bcnt[b]
                for k in range(3):
                    xlo[k] = min(xlo[k], bblo[b, k])
                    xhi[k] = max(xhi[k], bbhi[b, k])
                lcnt[b] = c_
                if c_:
                    dx, dy, dz = xhi[0] - xlo[0], xhi[1] - xlo[1], xhi[2] - xlo[2]
                    larea[b] = dx * dy + dy * dz + dz * dx
            xlo[:] = np.inf
            xhi[:] = -np.inf
            c_ = 0
            for b in range(NB - 1, 0, -1):
                c_ += bcnt[b]
                for k in range(3):
                    xlo[k] = min(xlo[k], bblo[b, k])
                    xhi[k] = max(xhi[k], bbhi[b, k])
                if c_ and lcnt[b - 1]:
                    dx, dy, dz = xhi[0] - xlo[0], xhi[1] - xlo[1], xhi[2] - xlo[2]
                    cost = larea[b - 1] * lcnt[b - 1] + (dx * dy + dy * dz + dz * dx) * c_
                    if cost < best_cost:
                        best_cost = cost
                        best_ax = ax
                        best_b = b
        i = s
        if best_ax >= 0:
            ax = best_ax
            ext = chi[ax] - clo[ax]
            i, j = s, e - 1
            while i <= j:
                if min(int((cen[perm[i], ax] - clo[ax]) / ext * NB), NB - 1) < best_b:
                    i += 1
                else:
                    perm[i], perm[j] = perm[j], perm[i]
                    j -= 1
        if i == s or i == e:
            # nothing separates them: split by count along the longest axis
            ax = 0
            for k in range(1, 3):
                if chi[k] - clo[k] > chi[ax] - clo[ax]:
                    ax = k
            sub = perm[s:e].copy()
            order = np.argsort(cen[sub, ax])
            perm[s:e] = sub[order]
            i = (s + e) // 2
        c = n_nodes
        n_nodes += 2
        child[node] = c
        st_node[sp], st_s[sp], st_e[sp] = c, s, i
        sp += 1
        st_node[sp], st_s[sp], st_e[sp] = c + 1, i, e
        sp += 1
    return perm, lo[:n_nodes].copy(), hi[:n_nodes].copy(), child[:n_nodes].copy(), start[:n_nodes].copy(), count[:n_nodes].copy()


# -- ray casting ------------------------------------------------------------------------
@njit(inline="always", **_opts)
def _ray_tri(tri, i, o, d):
    """Line parameter of the crossing of o + t d with triangle i (edges included), or nan."""
    return _ray_tri_s(tri, i, o[0], o[1], o[2], d[0], d[1], d[2])


@njit(inline="always", **_opts)
def _ray_tri_s(tri, i, o0, o1, o2, d0, d1, d2):
    ax, ay, az = np.float64(tri[i, 0, 0]), np.float64(tri[i, 0, 1]), np.float64(tri[i, 0, 2])
    e1x, e1y, e1z = tri[i, 1, 0] - ax, tri[i, 1, 1] - ay, tri[i, 1, 2] - az
    e2x, e2y, e2z = tri[i, 2, 0] - ax, tri[i, 2, 1] - ay, tri[i, 2, 2] - az
    px = d1 * e2z - d2 * e2y
    py = d2 * e2x - d0 * e2z
    pz = d0 * e2y - d1 * e2x
    det = e1x * px + e1y * py + e1z * pz
    if abs(det) <= 1e-12:
        return np.nan
    inv = 1.0 / det
    sx, sy, sz = o0 - ax, o1 - ay, o2 - az
    u = (sx * px + sy * py + sz * pz) * inv
    tol = 1e-9
    if u < -tol or u > 1.0 + tol:
        return np.nan
    qx = sy * e1z - sz * e1y
    qy = sz * e1x - sx * e1z
    qz = sx * e1y - sy * e1x
    v = (d0 * qx + d1 * qy + d2 * qz) * inv
    if v < -tol or u + v > 1.0 + tol:
        return np.nan
    return (e2x * qx + e2y * qy + e2z * qz) * inv


@njit(**_opts)
def cast(lo, hi, child, start, count, tri, owner, o, d, t0, t1, only, out_t, out_s, n0):
    """Every crossing of the line o + t d with t in [t0, t1], appended to out_t/out_s from
    index n0 (structure ids from ``owner``; with ``only`` non-empty, only those
    structures). Returns the new count, or -1 when the buffers are full."""
    inv = np.empty(3)
    for k in range(3):
        inv[k] = 1.0 / d[k] if d[k] != 0.0 else (1e300 if not np.signbit(d[k]) else -1e300)
    stack = np.empty(STACK, np.int64)
    sp = 1
    stack[0] = 0
    n = n0
    pad = 1e-7
    while sp > 0:
        sp -= 1
        node = stack[sp]
        tn, tf = t0, t1
        for k in range(3):
            a = (lo[node, k] - pad - o[k]) * inv[k]
            b = (hi[node, k] + pad - o[k]) * inv[k]
            if a > b:
                a, b = b, a
            if a > tn:
                tn = a
            if b < tf:
                tf = b
        if tn > tf:
            continue
        c = child[node]
        if c >= 0:
            if sp + 2 > STACK:
                return -1
            stack[sp] = c
            stack[sp + 1] = c + 1
            sp += 2
            continue
        for j in range(start[node], start[node] + count[node]):
            s = owner[j]
            if only.shape[0]:
                keep = False
                for q in range(only.shape[0]):
                    if only[q] == s:
                        keep = True
                if not keep:
                    continue
            t = _ray_tri(tri, j, o, d)
            if t == t and t >= t0 and t <= t1:
                if n >= out_t.shape[0]:
                    return -1
                out_t[n] = t
                out_s[n] = s
                n += 1
    return n


@njit(**_opts)
def _sort_hits(ts, ss, n):
    o = np.argsort(ts[:n], kind="mergesort")
    t2 = ts[:n][o].copy()
    s2 = ss[:n][o].copy()
    ts[:n] = t2
    ss[:n] = s2


@njit(**_opts)
def ray_box(e, d, blo, bhi):
    """[tmin, tmax] of the line e + t d within the box (as traversal._ray_box: nan ignored)."""
    tmin, tmax = -np.inf, np.inf
    for k in range(3):
        inv = 1.0 / d[k]
        a = (blo[k] - e[k]) * inv
        b = (bhi[k] - e[k]) * inv
        lo_ = min(a, b) if (a == a and b == b) else (a if a == a else b)
        hi_ = max(a, b) if (a == a and b == b) else (a if a == a else b)
        if lo_ == lo_ and lo_ > tmin:
            tmin = lo_
        if hi_ == hi_ and hi_ < tmax:
            tmax = hi_
    return tmin, tmax


@njit(**_opts)
def needle(lo, hi, child, start, count, tri, owner, is_bone, watertight, priority, is_fat, open_boxes,
           blo, bhi, e, d, depth, stop_at_bone, touch, eps, fat_mm,
           iv_s, iv_a, iv_b, iv_in, tip_s, buf_t, buf_s):
    """One full needle (the rules of TissueIndex.query, without clearances).

    Fills iv_s/iv_a/iv_b/iv_in (structure, entry depth, exit depth, contains the tip) in
    interval order and tip_s (structures containing the tip, most specific first).
    Returns (status, n_intervals, n_at_tip, actual depth, bone structure or -1)."""
    tmin, tmax = ray_box(e, d, blo, bhi)
    back = max(0.0, -tmin) + 1.0
    o = np.empty(3)
    for k in range(3):
        o[k] = e[k] - d[k] * back
    t_exit = max(tmax + back, back + depth) + 1.0
    t_tip = back + depth
    none = np.empty(0, np.int64)
    n = cast(lo, hi, child, start, count, tri, owner, o, d, 0.0, t_tip + touch, none, buf_t, buf_s, 0)
    if n < 0:
        return OVERFLOW, 0, 0, 0.0, -1
    _sort_hits(buf_t, buf_s, n)
    # repeated crossings of one structure within 10*eps count once (chain, as _merge_close)
    keep = np.ones(n, np.bool_)
    for k in range(1, n):
        for j in range(k - 1, -1, -1):
            if buf_s[j] == buf_s[k]:
                if buf_t[k] - buf_t[j] < 10 * eps:
                    keep[k] = False
                break
    m = 0
    for k in range(n):
        if keep[k]:
            buf_t[m] = buf_t[k]
            buf_s[m] = buf_s[k]
            m += 1
    n = m
    # crossings of different structures within TIE of each other are one place (a shared
    # surface: the reference gives the partner the hit's parameter)
    for k in range(1, n):
        if buf_t[k] - buf_t[k - 1] < TIE:
            buf_t[k] = buf_t[k - 1]
    bone = -1
    if stop_at_bone:
        for k in range(n):
            if is_bone[buf_s[k]] and buf_t[k] >= back - touch:
                bone = buf_s[k]
                t_tip = buf_t[k]
                break
    if bone >= 0:
        m = 0
        for k in range(n):
            if buf_t[k] < t_tip - touch or (abs(buf_t[k] - t_tip) <= touch and not is_bone[buf_s[k]]):
                buf_t[m] = buf_t[k]
                buf_s[m] = buf_s[k]
                m += 1
        n = m
    # structures in order of first crossing, with their crossing counts
    ns = 0
    us = np.empty(n, np.int64)
    uc = np.zeros(n, np.int64)
    for k in range(n):
        s = buf_s[k]
        f = -1
        for j in range(ns):
            if us[j] == s:
                f = j
                break
        if f < 0:
            us[ns] = s
            f = ns
            ns += 1
        uc[f] += 1
    n_open = 0
    op = np.empty(max(ns, 1), np.int64)
    for j in range(ns):
        if uc[j] % 2 == 1 and us[j] != bone:
            op[n_open] = us[j]
            n_open += 1
    close_t = np.full(max(ns, 1), np.nan)
    if n_open:
        t = t_tip + touch
        if n and buf_t[n - 1] + eps > t:
            t = buf_t[n - 1] + eps
        want = op[:n_open].copy()
        span = 32.0
        got = 0
        while got < n_open and t <= t_exit:
            t2 = min(t + span, t_exit)
            c = cast(lo, hi, child, start, count, tri, owner, o, d, t, t2, want, buf_t, buf_s, n)
            if c < 0:
                return OVERFLOW, 0, 0, 0.0, -1
            for k in range(n, c):
                for j in range(ns):
                    if us[j] == buf_s[k] and (close_t[j] != close_t[j] or buf_t[k] < close_t[j]):
                        close_t[j] = buf_t[k]
            got = 0
            for j in range(ns):
                if uc[j] % 2 == 1 and us[j] != bone and close_t[j] == close_t[j]:
                    got += 1
            # the next stretch starts where this one ended (a crossing exactly there is
            # found again: harmless, the earliest one counts)
            t = t2 if t2 > t else t_exit + 1.0
            span *= 2.0
            if t2 >= t_exit:
                break
    # open (non-watertight) meshes near the shaft always take the fallback
    a_end = np.empty(3)
    for k in range(3):
        a_end[k] = e[k] + d[k] * (t_tip - back)
    for q in range(open_boxes.shape[0]):
        ok = True
        for k in range(3):
            slo = min(e[k], a_end[k])
            shi = max(e[k], a_end[k])
            if not (open_boxes[q, 0, k] <= shi and open_boxes[q, 1, k] >= slo):
                ok = False
        if ok:
            return FALLBACK, 0, 0, 0.0, bone
    # intervals per structure (pairs of crossings)
    niv = 0
    nt = 0
    for j in range(ns):
        s = us[j]
        if s == bone:
            continue
        cnt = uc[j] + (1 if close_t[j] == close_t[j] else 0)
        if cnt % 2 == 1 or (not watertight[s] and not is_bone[s]):
            return FALLBACK, 0, 0, 0.0, bone
        # this structure's crossings in order (closing one last)
        tt = np.empty(cnt)
        q = 0
        for k in range(n):
            if buf_s[k] == s:
                tt[q] = buf_t[k]
                q += 1
        if q < cnt:
            tt[q] = close_t[j]
        for p in range(0, cnt - 1, 2):
            a, b = tt[p], tt[p + 1]
            if b < back - touch or a > t_tip + touch:
                continue
            inside = a <= t_tip + touch and b >= t_tip - touch
            if inside:
                dup = False
                for r in range(nt):
                    if tip_s[r] == s:
                        dup = True
                if not dup:
                    if nt >= tip_s.shape[0]:
                        return OVERFLOW, 0, 0, 0.0, bone
                    tip_s[nt] = s
                    nt += 1
            if niv >= iv_s.shape[0]:
                return OVERFLOW, 0, 0, 0.0, bone
            iv_s[niv] = s
            iv_a[niv] = max(a - back, 0.0)
            iv_b[niv] = min(b, t_tip) - back
            iv_in[niv] = inside
            niv += 1
    # sort by (entry, exit), stable
    for k in range(1, niv):
        j = k
        while j > 0 and (iv_a[j - 1] > iv_a[j] or (iv_a[j - 1] == iv_a[j] and (
                iv_b[j - 1] > iv_b[j] or (iv_b[j - 1] == iv_b[j] and iv_s[j - 1] > iv_s[j])))):
            iv_s[j - 1], iv_s[j] = iv_s[j], iv_s[j - 1]
            iv_a[j - 1], iv_a[j] = iv_a[j], iv_a[j - 1]
            iv_b[j - 1], iv_b[j] = iv_b[j], iv_b[j - 1]
            iv_in[j - 1], iv_in[j] = iv_in[j], iv_in[j - 1]
            j -= 1
    actual = t_tip - back
    # the fat reaches the deep fascia (TissueIndex._fat_to_fascia)
    k = -1
    for j in range(niv):
        if is_fat[iv_s[j]]:
            k = j
            break
    guard = 0
    while k >= 0 and guard <= niv:
        guard += 1
        if iv_in[k]:
            break
        fexit = iv_b[k]
        best = np.inf
        bj = -1
        for j in range(niv):
            if j != k and iv_a[j] >= fexit - eps and iv_a[j] < best:
                best = iv_a[j]
                bj = j
        if bj >= 0:
            if best - fexit > fat_mm:
                break
            iv_b[k] = max(best, fexit)
            k = bj if is_fat[iv_s[bj]] else -1
        else:
            if actual - fexit <= fat_mm:
                iv_b[k] = actual
                iv_in[k] = True
                dup = False
                for r in range(nt):
                    if tip_s[r] == iv_s[k]:
                        dup = True
                if not dup:
                    if nt >= tip_s.shape[0]:
                        return OVERFLOW, 0, 0, 0.0, bone
                    tip_s[nt] = iv_s[k]
                    nt += 1
            break
    # most specific first; among equals the one entered last (entry of its last interval)
    ent = np.zeros(nt)
    for r in range(nt):
        for j in range(niv):
            if iv_s[j] == tip_s[r]:
                ent[r] = iv_a[j]
    for r in range(1, nt):
        j = r
        while j > 0 and (priority[tip_s[j - 1]] < priority[tip_s[j]]
                         or (priority[tip_s[j - 1]] == priority[tip_s[j]] and (
                             ent[j - 1] < ent[j] or (ent[j - 1] == ent[j] and tip_s[j - 1] > tip_s[j])))):
            tip_s[j - 1], tip_s[j] = tip_s[j], tip_s[j - 1]
            ent[j - 1], ent[j] = ent[j], ent[j - 1]
            j -= 1
    return OK, niv, nt, actual, bone


# -- distances --------------------------------------------------------------------------
@njit(inline="always", **_opts)
def _pt_tri2(px, py, pz, tri, i):
    """Squared distance from a point to triangle i (Ericson, Real-Time Collision Detection 5.1.5)."""
    ax, ay, az = np.float64(tri[i, 0, 0]), np.float64(tri[i, 0, 1]), np.float64(tri[i, 0, 2])
    bx, by, bz = np.float64(tri[i, 1, 0]), np.float64(tri[i, 1, 1]), np.float64(tri[i, 1, 2])
    cx, cy, cz = np.float64(tri[i, 2, 0]), np.float64(tri[i, 2, 1]), np.float64(tri[i, 2, 2])
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        qx, qy, qz = ax, ay, az
    else:
        bpx, bpy, bpz = px - bx, py - by, pz - bz
        d3 = abx * bpx + aby * bpy + abz * bpz
        d4 = acx * bpx + acy * bpy + acz * bpz
        if d3 >= 0.0 and d4 <= d3:
            qx, qy, qz = bx, by, bz
        else:
            vc = d1 * d4 - d3 * d2
            if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
                v = d1 / (d1 - d3)
                qx, qy, qz = ax + v * abx, ay + v * aby, az + v * abz
            else:
                cpx, cpy, cpz = px - cx, py - cy, pz - cz
                d5 = abx * cpx + aby * cpy + abz * cpz
                d6 = acx * cpx + acy * cpy + acz * cpz
                if d6 >= 0.0 and d5 <= d6:
                    qx, qy, qz = cx, cy, cz
                else:
                    vb = d5 * d2 - d1 * d6
                    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
                        w = d2 / (d2 - d6)
                        qx, qy, qz = ax + w * acx, ay + w * acy, az + w * acz
                    else:
                        va = d3 * d6 - d5 * d4
                        if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
                            w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
                            qx, qy, qz = bx + w * (cx - bx), by + w * (cy - by), bz + w * (cz - bz)
                        else:
                            den = va + vb + vc
                            if den == 0.0:  # degenerate triangle: nearest vertex
                                da = apx * apx + apy * apy + apz * apz
                                db = bpx * bpx + bpy * bpy + bpz * bpz
                                dc = cpx * cpx + cpy * cpy + cpz * cpz
                                return min(da, db, dc)
                            v = vb / den
                            w = vc / den
                            qx = ax + abx * v + acx * w
                            qy = ay + aby * v + acy * w
                            qz = az + abz * v + acz * w
    dx, dy, dz = px - qx, py - qy, pz - qz
    return dx * dx + dy * dy + dz * dz


@njit(inline="always", **_opts)
def _seg_seg2(p1x, p1y, p1z, q1x, q1y, q1z, p2x, p2y, p2z, q2x, q2y, q2z):
    """Squared distance between segments p1q1 and p2q2 (Ericson 5.1.9)."""
    d1x, d1y, d1z = q1x - p1x, q1y - p1y, q1z - p1z
    d2x, d2y, d2z = q2x - p2x, q2y - p2y, q2z - p2z
    rx, ry, rz = p1x - p2x, p1y - p2y, p1z - p2z
    a = d1x * d1x + d1y * d1y + d1z * d1z
    e = d2x * d2x + d2y * d2y + d2z * d2z
    f = d2x * rx + d2y * ry + d2z * rz
    tiny = 1e-18
    if a <= tiny and e <= tiny:
        s = 0.0
        t = 0.0
    elif a <= tiny:
        s = 0.0
        t = min(max(f / e, 0.0), 1.0)
    else:
        c = d1x * rx + d1y * ry + d1z * rz
        if e <= tiny:
            t = 0.0
            s = min(max(-c / a, 0.0), 1.0)
        else:
            b = d1x * d2x + d1y * d2y + d1z * d2z
            den = a * e - b * b
            s = min(max((b * f - c * e) / den, 0.0), 1.0) if den > 0.0 else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t = 0.0
                s = min(max(-c / a, 0.0), 1.0)
            elif t > 1.0:
                t = 1.0
                s = min(max((b - c) / a, 0.0), 1.0)
    dx = (p1x + d1x * s) - (p2x + d2x * t)
    dy = (p1y + d1y * s) - (p2y + d2y * t)
    dz = (p1z + d1z * s) - (p2z + d2z * t)
    return dx * dx + dy * dy + dz * dz


@njit(inline="always", **_opts)
def _seg_tri2(p, q, tri, i):
    """Squared distance from segment pq to triangle i (0 when it pierces the triangle)."""
    dx, dy, dz = q[0] - p[0], q[1] - p[1], q[2] - p[2]
    ln = dx * dx + dy * dy + dz * dz
    if ln > 0.0:
        t = _ray_tri_s(tri, i, p[0], p[1], p[2], dx, dy, dz)
        if t == t and t >= 0.0 and t <= 1.0:
            return 0.0
    best = min(_pt_tri2(p[0], p[1], p[2], tri, i), _pt_tri2(q[0], q[1], q[2], tri, i))
    for k in range(3):
        a = tri[i, k]
        b = tri[i, (k + 1) % 3]
        best = min(best, _seg_seg2(p[0], p[1], p[2], q[0], q[1], q[2],
                                   np.float64(a[0]), np.float64(a[1]), np.float64(a[2]),
                                   np.float64(b[0]), np.float64(b[1]), np.float64(b[2])))
    return best


@njit(inline="always", **_opts)
def _seg_tribox_within(p, q, tri, j, r):
    """Can segment pq come within r of triangle j's box? (as _seg_box_within)"""
    t0, t1 = 0.0, 1.0
    for k in range(3):
        a = min(tri[j, 0, k], tri[j, 1, k], tri[j, 2, k]) - r
        b = max(tri[j, 0, k], tri[j, 1, k], tri[j, 2, k]) + r
        dk = q[k] - p[k]
        if dk == 0.0:
            if p[k] < a or p[k] > b:
                return False
        else:
            u = (a - p[k]) / dk
            v = (b - p[k]) / dk
            if u > v:
                u, v = v, u
            t0 = max(t0, u)
            t1 = min(t1, v)
            if t0 > t1:
                return False
    return True


@njit(inline="always", **_opts)
def _seg_box_within(p, q, lo, hi, node, r):
    """Can segment pq come within r of box ``node``? (clip against the box grown by r: a
    superset of the true r-neighbourhood, so a 'no' is certain)."""
    t0, t1 = 0.0, 1.0
    for k in range(3):
        dk = q[k] - p[k]
        a = lo[node, k] - r
        b = hi[node, k] + r
        if dk == 0.0:
            if p[k] < a or p[k] > b:
                return False
        else:
            u = (a - p[k]) / dk
            v = (b - p[k]) / dk
            if u > v:
                u, v = v, u
            t0 = max(t0, u)
            t1 = min(t1, v)
            if t0 > t1:
                return False
    return True


@njit(inline="always", **_opts)
def _seg_box2(p, q, lo, hi, node, br):
    """Exact squared distance from segment pq to box ``node``: along the segment the
    squared distance is piecewise quadratic with breaks where a coordinate crosses a face
    plane; each piece is minimised in closed form."""
    nb = 0
    br[nb] = 0.0
    nb += 1
    for k in range(3):
        dk = q[k] - p[k]
        if dk != 0.0:
            for w in (lo[node, k], hi[node, k]):
                t = (w - p[k]) / dk
                if 0.0 < t < 1.0:
                    br[nb] = t
                    nb += 1
    br[nb] = 1.0
    nb += 1
    for j in range(1, nb):
        x = br[j]
        i = j - 1
        while i >= 0 and br[i] > x:
            br[i + 1] = br[i]
            i -= 1
        br[i + 1] = x
    b = br
    best = np.inf
    for j in range(nb - 1):
        ta, tb = b[j], b[j + 1]
        tm = 0.5 * (ta + tb)
        A = 0.0
        B = 0.0
        C = 0.0
        for k in range(3):
            dk = q[k] - p[k]
            x = p[k] + dk * tm
            if x < lo[node, k]:
                c = p[k] - lo[node, k]
            elif x > hi[node, k]:
                c = p[k] - hi[node, k]
            else:
                continue
            A += dk * dk
            B += 2.0 * c * dk
            C += c * c
        if A > 0.0:
            t = min(max(-B / (2.0 * A), ta), tb)
        else:
            t = ta
        v = (A * t + B) * t + C
        if v < best:
            best = v
    return max(best, 0.0)


@njit(**_opts)
def seg_mesh_dist(lo, hi, child, start, count, tri, root, p, q, bound):
    """Exact distance from segment pq to the triangles under BVH node ``root``; ``inf`` if
    none is within ``bound``."""
    best2 = bound * bound
    found = False
    stack = np.empty(STACK, np.int64)
    dstack = np.empty(STACK)
    br = np.empty(8)
    stack[0] = root
    dstack[0] = _seg_box2(p, q, lo, hi, root, br)
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        if dstack[sp] > best2:
            continue
        c = child[node]
        if c >= 0:
            # the nearer child last, so it is popped first
            da = _seg_box2(p, q, lo, hi, c, br)
            db = _seg_box2(p, q, lo, hi, c + 1, br)
            if sp + 2 > STACK:
                return np.nan
            if da <= db:
                stack[sp], dstack[sp] = c + 1, db
                stack[sp + 1], dstack[sp + 1] = c, da
            else:
                stack[sp], dstack[sp] = c, da
                stack[sp + 1], dstack[sp + 1] = c + 1, db
            sp += 2
            continue
        for j in range(start[node], start[node] + count[node]):
            if not _seg_tribox_within(p, q, tri, j, np.sqrt(best2)):
                continue
            d2 = _seg_tri2(p, q, tri, j)
            if d2 <= best2:
                best2 = d2
                found = True
    return np.sqrt(best2) if found else np.inf


@njit(inline="always", **_opts)
def _pt_box2(p, lo, hi, node):
    """Squared distance from a point to box ``node``."""
    g = 0.0
    for k in range(3):
        x = max(lo[node, k] - p[k], 0.0, p[k] - hi[node, k])
        g += x * x
    return g


@njit(**_opts)
def pt_mesh_dist(lo, hi, child, start, count, tri, root, p, bound):
    """Exact distance from point p to the triangles under BVH node ``root`` (the point
    case of :func:`seg_mesh_dist`: one closest-point test per triangle); ``inf`` if none
    is within ``bound``."""
    best2 = bound * bound
    found = False
    stack = np.empty(STACK, np.int64)
    dstack = np.empty(STACK)
    stack[0] = root
    dstack[0] = _pt_box2(p, lo, hi, root)
    sp = 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        if dstack[sp] > best2:
            continue
        c = child[node]
        if c >= 0:
            da = _pt_box2(p, lo, hi, c)
            db = _pt_box2(p, lo, hi, c + 1)
            if sp + 2 > STACK:
                return np.nan
            if da <= db:
                stack[sp], dstack[sp] = c + 1, db
                stack[sp + 1], dstack[sp + 1] = c, da
            else:
                stack[sp], dstack[sp] = c, da
                stack[sp + 1], dstack[sp + 1] = c + 1, db
            sp += 2
            continue
        for j in range(start[node], start[node] + count[node]):
            d2 = _pt_tri2(p[0], p[1], p[2], tri, j)
            if d2 <= best2:
                best2 = d2
                found = True
    return np.sqrt(best2) if found else np.inf


@njit(**_opts)
def clearances(lo, hi, child, start, count, tri, roots, dlo, dhi, e, d, depth, within, out_shaft, out_tip):
    """Shaft (entry to tip) and tip distance to every danger structure (BVH roots
    ``roots``); ``inf`` beyond ``within``."""
    p = e.copy()
    q = e + d * depth
    for r in range(roots.shape[0]):
        out_shaft[r] = np.inf
        out_tip[r] = np.inf
        g = 0.0
        for k in range(3):
            x = max(dlo[r, k] - max(p[k], q[k]), 0.0, min(p[k], q[k]) - dhi[r, k])
            g += x * x
        if np.sqrt(g) > within:
            continue
        s = seg_mesh_dist(lo, hi, child, start, count, tri, roots[r], p, q, within)
        if s == np.inf:
            continue
        out_shaft[r] = s
        out_tip[r] = pt_mesh_dist(lo, hi, child, start, count, tri, roots[r], q, s + depth + 1e-6)


@njit(parallel=True, **_opts)
def clearances_batch(lo, hi, child, start, count, tri, roots, dlo, dhi, E, D, dep, within, out_shaft):
    n = E.shape[0]
    for i in prange(n):
        col = np.empty(roots.shape[0])
        p = E[i].copy()
        q = E[i] + D[i] * dep[i]
        for r in range(roots.shape[0]):
            col[r] = np.inf
            g = 0.0
            for k in range(3):
                x = max(dlo[r, k] - max(p[k], q[k]), 0.0, min(p[k], q[k]) - dhi[r, k])
                g += x * x
            if np.sqrt(g) > within:
                continue
            col[r] = seg_mesh_dist(lo, hi, child, start, count, tri, roots[r], p, q, within)
        out_shaft[:, i] = col


@njit(parallel=True, **_opts)
def needles_batch(lo, hi, child, start, count, tri, owner, is_bone, watertight, priority, is_fat, is_harm,
                  open_boxes, blo, bhi, E, D, dep, stop_at_bone, touch, eps, fat_mm,
                  has_fill, has_relabel, is_relabel, is_conn, is_skin, fill, lut, fo, fh, fhi, seam, step,
                  status, depth_out, tip_struct, bone_out, breach, breach_depth, n_breach,
                  ov_s, ov_a, ov_b, ov_fl, ov_n):
    """:func:`needle` (and :func:`between` with a fill grid) for every needle, in parallel:
    status, actual depth, tip structure, bone, first breach and the number of structures
    breached. With ov_s of width K > 0, each needle's intervals too (structure, entry,
    exit, filled; ov_n[i] = -1 when they do not fit)."""
    n = E.shape[0]
    K = ov_s.shape[1]
    for i in prange(n):
        iv_s = np.empty(512, np.int64)
        iv_a = np.empty(512)
        iv_b = np.empty(512)
        iv_in = np.empty(512, np.bool_)
        tip_s = np.empty(256, np.int64)
        buf_t = np.empty(MAX_HITS)
        buf_s = np.empty(MAX_HITS, np.int64)
        st, niv, nt, actual, bone = needle(lo, hi, child, start, count, tri, owner, is_bone, watertight, priority,
                                           is_fat, open_boxes, blo, bhi, E[i], D[i], dep[i], stop_at_bone,
                                           touch, eps, fat_mm, iv_s, iv_a, iv_b, iv_in, tip_s, buf_t, buf_s)
        tip = tip_s[0] if nt else -1
        if st == OK and has_fill:
            w_s = np.empty(1024, np.int64)
            w_a = np.empty(1024)
            w_b = np.empty(1024)
            w_ex = np.empty(1024, np.bool_)
            w_fl = np.empty(1024, np.bool_)
            m, gtip = between(iv_s, iv_a, iv_b, iv_in, niv, nt, has_relabel, is_relabel, is_conn, is_skin,
                              fill, lut, fo, fh, fhi, E[i], D[i], actual, bone >= 0, eps, seam, step,
                              w_s, w_a, w_b, w_ex, w_fl)
            if m < 0:
                st = OVERFLOW
            else:
                niv = m
                for j in range(m):
                    iv_s[j], iv_a[j], iv_b[j] = w_s[j], w_a[j], w_b[j]
                    iv_in[j] = w_fl[j]  # iv_in now holds "filled"
                if gtip >= 0:
                    tip = gtip
        else:
            for j in range(niv):
                iv_in[j] = False
        status[i] = st
        depth_out[i] = actual
        bone_out[i] = bone
        tip_struct[i] = tip
        breach[i] = -1
        breach_depth[i] = np.nan
        nb = 0
        for j in range(niv):
            if is_harm[iv_s[j]]:
                first = True
                for q in range(j):
                    if iv_s[q] == iv_s[j]:
                        first = False
                        break
                if first:
                    if nb == 0:
                        breach[i] = iv_s[j]
                        breach_depth[i] = iv_a[j]
                    nb += 1
        n_breach[i] = nb
        if K:
            if niv <= K:
                for j in range(niv):
                    ov_s[i, j], ov_a[i, j], ov_b[i, j], ov_fl[i, j] = iv_s[j], iv_a[j], iv_b[j], iv_in[j]
                ov_n[i] = niv
            else:
                ov_n[i] = -1


@njit(parallel=True, **_opts)
def clearances_min(lo, hi, child, start, count, tri, roots, dlo, dhi, E, D, dep, within, best, arg):
    """The closest any needle's shaft comes to each danger structure: best[c, r] over the
    needles of chunk c (needles c*n/C .. (c+1)*n/C, C = best.shape[0]) and the first needle
    there that comes that close (arg; -1 and inf when none within ``within``). Each chunk's
    best so far bounds its next searches (branch and bound across needles)."""
    n = E.shape[0]
    C = best.shape[0]
    R = roots.shape[0]
    for c in prange(C):
        for r in range(R):
            best[c, r] = np.inf
            arg[c, r] = -1
        for i in range(c * n // C, (c + 1) * n // C):
            p = E[i].copy()
            q = E[i] + D[i] * dep[i]
            for r in range(R):
                bound = min(within, best[c, r])
                g = 0.0
                for k in range(3):
                    x = max(dlo[r, k] - max(p[k], q[k]), 0.0, min(p[k], q[k]) - dhi[r, k])
                    g += x * x
                if np.sqrt(g) > bound:
                    continue
                dd = seg_mesh_dist(lo, hi, child, start, count, tri, roots[r], p, q, bound)
                if dd < best[c, r]:
                    best[c, r] = dd
                    arg[c, r] = i


@njit(**_opts)
def full(lo, hi, child, start, count, tri, owner, is_bone, watertight, priority, is_fat, open_boxes,
         blo, bhi, e, d, depth, stop_at_bone, touch, eps, fat_mm, iv_s, iv_a, iv_b, iv_in, tip_s, buf_t, buf_s,
         dlo, dhi, dchild, dstart, dcount, dtri, roots, dbox_lo, dbox_hi, within, out_shaft, out_tip):
    """:func:`needle` and then :func:`clearances` for its actual depth, in one call."""
    st, niv, nt, actual, bone = needle(lo, hi, child, start, count, tri, owner, is_bone, watertight, priority,
                                       is_fat, open_boxes, blo, bhi, e, d, depth, stop_at_bone, touch, eps,
                                       fat_mm, iv_s, iv_a, iv_b, iv_in, tip_s, buf_t, buf_s)
    if st == OK:
        clearances(dlo, dhi, dchild, dstart, dcount, dtri, roots, dbox_lo, dbox_hi, e, d, actual, within,
                   out_shaft, out_tip)
    return st, niv, nt, actual, bone


# -- the tissue between the meshes (TissueIndex._between, docs/needle.md rule 10) ----------
@njit(inline="always", **_opts)
def _fill_label(fill, lut, fo, fh, fhi, e, d, t):
    """The fill grid's structure at e + t d (as TissueIndex.fill_at; -1 outside the grid)."""
    q0 = np.int64(np.rint((e[0] + t * d[0] - fo[0]) / fh))
    q1 = np.int64(np.rint((e[1] + t * d[1] - fo[1]) / fh))
    q2 = np.int64(np.rint((e[2] + t * d[2] - fo[2]) / fh))
    if q0 < 0 or q1 < 0 or q2 < 0 or q0 > fhi[0] or q1 > fhi[1] or q2 > fhi[2]:
        return -1
    return lut[fill[q0, q1, q2]]


@njit(**_opts)
def _grid_runs(fill, lut, fo, fh, fhi, e, d, a, b, step, rs, ra, rb):
    """(structure, from, to) runs of the fill grid between depths a and b (as
    TissueIndex._runs: samples at the middles of n equal steps, edges half way between).
    Returns the count, or -1 when rs is too short."""
    n = max(1, int(np.ceil((b - a) / step)))
    w = (b - a) / n
    nr = 0
    cur = _fill_label(fill, lut, fo, fh, fhi, e, d, a + 0.5 * w)
    start = 0
    for k in range(1, n + 1):
        if k < n:
            lab = _fill_label(fill, lut, fo, fh, fhi, e, d, a + (k + 0.5) * w)
            if lab == cur:
                continue
        if nr >= rs.shape[0]:
            return -1
        rs[nr] = cur
        ra[nr] = a if start == 0 else ((a + (start - 1 + 0.5) * w) + (a + (start + 0.5) * w)) / 2
        rb[nr] = b if k == n else ((a + (k - 1 + 0.5) * w) + (a + (k + 0.5) * w)) / 2
        nr += 1
        if k < n:
            cur = lab
            start = k
    return nr


@njit(inline="always", **_opts)
def _iv_sort(s, a, b, ex, fl, n):
    """Stable sort of intervals by (entry, exit) (insertion sort: a few dozen at most)."""
    for k in range(1, n):
        j = k
        while j > 0 and (a[j - 1] > a[j] or (a[j - 1] == a[j] and b[j - 1] > b[j])):
            s[j - 1], s[j] = s[j], s[j - 1]
            a[j - 1], a[j] = a[j], a[j - 1]
            b[j - 1], b[j] = b[j], b[j - 1]
            ex[j - 1], ex[j] = ex[j], ex[j - 1]
            fl[j - 1], fl[j] = fl[j], fl[j - 1]
            j -= 1


@njit(inline="always", **_opts)
def _iv_merge(s, a, b, ex, fl, n, eps):
    """Join an interval to the one before when both are the same structure and touch
    (results._merge_runs), in place; returns the new count."""
    m = 0
    for k in range(n):
        if m > 0 and s[m - 1] == s[k] and a[k] <= b[m - 1] + eps:
            if b[k] >= b[m - 1]:
                ex[m - 1] = ex[k]
                b[m - 1] = b[k]
            fl[m - 1] = fl[m - 1] and fl[k]
        else:
            s[m], a[m], b[m], ex[m], fl[m] = s[k], a[k], b[k], ex[k], fl[k]
            m += 1
    return m


@njit(**_opts)
def between(iv_s, iv_a, iv_b, iv_in, niv, nt, has_relabel, is_relabel, is_conn, is_skin,
            fill, lut, fo, fh, fhi, e, d, actual, on_bone, eps, seam, step,
            out_s, out_a, out_b, out_ex, out_fl):
    """TissueIndex._between on the compiled query's intervals: the fill grid names the gaps
    between the meshes, and the aponeurotic part of a relabelled muscle. Writes the
    intervals (structure, entry, exit, exited, filled) to out_*; returns (count, tip)
    with tip the grid's structure at the tip when no mesh holds it (-1: none there, -2:
    the meshes' answer stands), or count -1 when the buffers are too short."""
    cap = out_s.shape[0]
    rs = np.empty(cap, np.int64)
    ra = np.empty(cap)
    rb = np.empty(cap)
    if niv > cap:
        return -1, -2
    # the meshes' intervals in (entry, exit) order
    ws = np.empty(cap, np.int64)
    wa = np.empty(cap)
    wb = np.empty(cap)
    wex = np.empty(cap, np.bool_)
    wfl = np.zeros(cap, np.bool_)
    for k in range(niv):
        ws[k], wa[k], wb[k], wex[k] = iv_s[k], iv_a[k], iv_b[k], not iv_in[k]
    m = niv
    _iv_sort(ws, wa, wb, wex, wfl, m)
    if has_relabel:
        # a relabelled muscle's stretches the grid calls fascia are that fascia
        m2 = 0
        for k in range(m):
            si = ws[k]
            split = False
            nr = 0
            if is_relabel[si]:
                nr = _grid_runs(fill, lut, fo, fh, fhi, e, d, wa[k], wb[k], step, rs, ra, rb)
                if nr < 0:
                    return -1, -2
                for r in range(nr):
                    if rs[r] >= 0 and rs[r] != si and is_conn[rs[r]]:
                        split = True
                        break
            if split:
                if m2 + nr > cap:
                    return -1, -2
                for r in range(nr):
                    lab = rs[r]
                    s2 = lab if (lab >= 0 and is_conn[lab]) else si
                    out_s[m2], out_a[m2], out_b[m2] = s2, ra[r], rb[r]
                    out_ex[m2] = wex[k] or r != nr - 1
                    out_fl[m2] = s2 != si
                    m2 += 1
            else:
                if m2 >= cap:
                    return -1, -2
                out_s[m2], out_a[m2], out_b[m2], out_ex[m2], out_fl[m2] = ws[k], wa[k], wb[k], wex[k], wfl[k]
                m2 += 1
        # a piece of the relabelled muscle touching the fascia it became is fascia too
        first_f = -1
        tl = np.zeros(m2, np.bool_)  # the fascia pieces before any change (as the Python list)
        for k in range(m2):
            if is_conn[out_s[k]]:
                tl[k] = True
                if first_f < 0:
                    first_f = k
        if first_f >= 0:
            fs = out_s[first_f]
            for k in range(m2):
                if not is_relabel[out_s[k]]:
                    continue
                touch = False
                for f in range(m2):
                    if tl[f] and (abs(out_a[k] - out_b[f]) < 1.0 or abs(out_b[k] - out_a[f]) < 1.0):
                        touch = True
                        break
                if touch:
                    out_s[k] = fs
                    out_fl[k] = True
        _iv_sort(out_s, out_a, out_b, out_ex, out_fl, m2)
        m2 = _iv_merge(out_s, out_a, out_b, out_ex, out_fl, m2, eps)
        for k in range(m2):
            ws[k], wa[k], wb[k], wex[k], wfl[k] = out_s[k], out_a[k], out_b[k], out_ex[k], out_fl[k]
        m = m2
    # the gaps (from, to, interval before, interval after)
    ga = np.empty(m + 1)
    gb = np.empty(m + 1)
    gp = np.empty(m + 1, np.int64)
    gn = np.empty(m + 1, np.int64)
    ng = 0
    cover_end = 0.0
    prev = -1
    for k in range(m):
        if wa[k] > cover_end + eps:
            ga[ng], gb[ng], gp[ng], gn[ng] = cover_end, wa[k], prev, k
            ng += 1
        if wb[k] >= cover_end:
            cover_end = wb[k]
            prev = k
    if actual > cover_end + eps:
        ga[ng], gb[ng], gp[ng], gn[ng] = cover_end, actual, prev, -1
        ng += 1
    n = m
    added = 0
    for g in range(ng):
        bf, af = gp[g], gn[g]
        if bf < 0 or (is_skin[ws[bf]] and (af < 0 or is_skin[ws[af]])):
            continue  # outside the skin
        a, b = ga[g], gb[g]
        if b - a < seam and not is_skin[ws[bf]]:
            # a seam between meshes, finer than the grid: the structure before goes on
            rs[0], ra[0], rb[0] = ws[bf], a, b
            nr = 1
        else:
            nr = _grid_runs(fill, lut, fo, fh, fhi, e, d, a, b, step, rs, ra, rb)
            if nr < 0:
                return -1, -2
        for r in range(nr):
            if rs[r] < 0:
                continue
            if n >= cap:
                return -1, -2
            at_end = rb[r] >= actual - eps and af < 0
            ws[n], wa[n], wb[n], wex[n], wfl[n] = rs[r], ra[r], rb[r], not at_end, True
            n += 1
            added += 1
    if added:
        _iv_sort(ws, wa, wb, wex, wfl, n)
        n = _iv_merge(ws, wa, wb, wex, wfl, n, eps)
    for k in range(n):
        out_s[k], out_a[k], out_b[k], out_ex[k], out_fl[k] = ws[k], wa[k], wb[k], wex[k], wfl[k]
    tip = -2
    if nt == 0 and actual > 0 and not on_bone:
        # the tip in no mesh: the grid names it
        tip = _fill_label(fill, lut, fo, fh, fhi, e, d, actual)
    return n, tip
