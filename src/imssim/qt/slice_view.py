"""The slice view: a 2D cut of the body in a plane holding the needle, drawn with QPainter.

Thin: the cut comes from :mod:`imssim.core.engines.slice` (cached per entry, direction and plane);
this widget only draws it, the needle on it (entry at the top, tip going down), depth
ticks every 10 mm and the name of the tissue at the tip. QPainter needs no second OpenGL
context, so it works wherever the window does.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from ..core.engines.slice import PLANES, SliceCache
from ..render.scene import STYLE

Qt = QtCore.Qt

#: outline colours per kind, as in the 3D view but lighter (drawn on a dark background);
#: danger structures are drawn thicker and named in the legend with their harm
KIND_PEN = {k: QtGui.QColor.fromRgbF(*STYLE[k][0]).lighter(130) for k in STYLE}
KIND_PEN["skin"] = QtGui.QColor(240, 190, 150)
KIND_PEN["subcutaneous"] = QtGui.QColor(200, 180, 90)
KIND_PEN["muscle"] = QtGui.QColor(235, 120, 110)
KIND_PEN["bone"] = QtGui.QColor(245, 240, 225)
KIND_PEN["connective"] = QtGui.QColor(150, 170, 230)
KIND_LABEL = {"subcutaneous": "fat", "canal": "spinal canal", "connective": "fascia / ligament"}
BACKGROUND = QtGui.QColor(24, 26, 30)


class SliceView(QtWidgets.QWidget):
    """Shows the current needle's slice; ``update_needle`` feeds it from the controller."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(260, 260)
        self.cache = SliceCache()
        self.plane = "sagittal"
        self.slice = None
        self.depth = 0.0
        self.tip_label = ""
        self.setToolTip("Cross-section in the plane of the needle: skin at the top, the needle going down.")

    def set_plane(self, plane: str) -> None:
        if plane not in PLANES:
            raise ValueError(f"unknown slice plane {plane!r}")
        self.plane = plane

    def update_needle(self, atlas, needle=None, depth: float = 0.0, tip_label: str = "") -> None:
        """Cut along ``needle`` (anything with ``entry``, ``direction`` and ``length_mm``) with
        its tip at ``depth`` mm, or clear the view when ``needle`` is None."""
        if needle is None:
            self.slice, self.depth, self.tip_label = None, 0.0, ""
        else:
            self.slice = self.cache.get(atlas, needle.entry, needle.direction, needle.length_mm, self.plane)
            self.depth, self.tip_label = float(depth), tip_label
        self.update()

    # -- drawing ----------------------------------------------------------------------------
    def _transform(self):
        u0, u1, v0, v1 = self.slice.bounds
        w, h = self.width(), self.height() - 34
        scale = min(w / (v1 - v0), h / (u1 - u0))
        ox = w / 2.0
        oy = 16 - u0 * scale

        def to_px(uv):
            uv = np.asarray(uv, float)
            return np.stack([ox + uv[..., 1] * scale, oy + uv[..., 0] * scale], axis=-1)

        return to_px, scale

    def paintEvent(self, ev):  # noqa: N802 (Qt API)
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.Antialiasing)
        p.fillRect(self.rect(), BACKGROUND)
        if self.slice is None:
            p.setPen(QtGui.QColor(180, 180, 180))
            p.drawText(self.rect(), Qt.AlignCenter, "Insert a needle to see\nthe slice along it.")
            p.end()
            return
        to_px, scale = self._transform()
        shown = {}
        for ln in self.slice.lines:
            colour = KIND_PEN.get(ln.kind, QtGui.QColor(160, 160, 160))
            pen = QtGui.QPen(colour)
            pen.setWidthF(3.0 if ln.harm else 2.0 if ln.kind == "bone" else 1.2)
            if ln.kind == "subcutaneous":
                pen.setStyle(Qt.DotLine)
            p.setPen(pen)
            px = to_px(ln.segments)
            p.drawLines([QtCore.QLineF(a[0], a[1], b[0], b[1]) for a, b in px])
            name = KIND_LABEL.get(ln.kind, ln.kind) + (f" ({ln.harm})" if ln.harm else "")
            shown.setdefault(name, colour)
        # the needle: the whole length faint, the inserted part bright, the tip a dot
        n0, n1, tip = to_px([0.0, 0.0]), to_px([self.slice.length, 0.0]), to_px([self.depth, 0.0])
        p.setPen(QtGui.QPen(QtGui.QColor(150, 160, 175), 1.0, Qt.DashLine))
        p.drawLine(QtCore.QPointF(*n0), QtCore.QPointF(*n1))
        p.setPen(QtGui.QPen(QtGui.QColor(235, 240, 250), 2.0))
        p.drawLine(QtCore.QPointF(*n0), QtCore.QPointF(*tip))
        p.setBrush(QtGui.QColor(90, 200, 255))
        p.drawEllipse(QtCore.QPointF(*tip), 3.5, 3.5)
        # depth ticks every 10 mm
        p.setPen(QtGui.QColor(200, 200, 200))
        f = p.font()
        f.setPointSizeF(7.5)
        p.setFont(f)
        for mm in range(10, int(self.slice.length) + 1, 10):
            x, y = to_px([float(mm), 0.0])
            p.drawLine(QtCore.QPointF(x - 4, y), QtCore.QPointF(x + 4, y))
            p.drawText(QtCore.QPointF(x + 6, y + 3), f"{mm}")
        # which way is which across the needle, and what the colours are
        lo, hi = self.slice.across_ends()
        p.setPen(QtGui.QColor(200, 200, 200))
        mid = to_px([self.slice.length + 8.0, 0.0])[1]  # beside the needle's far end
        p.drawText(QtCore.QRectF(2, mid - 8, 80, 16), Qt.AlignLeft | Qt.AlignVCenter, f"\u2190 {lo}")
        p.drawText(QtCore.QRectF(self.width() - 82, mid - 8, 80, 16), Qt.AlignRight | Qt.AlignVCenter, f"{hi} \u2192")
        p.fillRect(QtCore.QRectF(0, 0, self.width(), 15), BACKGROUND)
        x = 4.0
        fm = p.fontMetrics()
        for name, colour in shown.items():
            w = fm.horizontalAdvance(name) + 10
            if x + w > self.width():
                break
            p.setPen(colour)
            p.drawText(QtCore.QPointF(x, 12), name)
            x += w
        h = self.height()
        p.fillRect(QtCore.QRectF(0, h - 18, self.width(), 18), BACKGROUND)
        p.setPen(QtGui.QColor(235, 235, 235))
        p.drawText(QtCore.QRectF(4, h - 17, self.width() - 8, 16), Qt.AlignLeft | Qt.AlignVCenter,
                   f"{self.plane} slice   depth {self.depth:.1f} mm   {self.tip_label}")
        p.end()
