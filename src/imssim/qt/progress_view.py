"""The Progress tab: the trainee's saved sessions (a table) and the progress report's plots.

A view only: :class:`~imssim.app.progress.ProgressDesk` reads the store and draws the
plots (the same matplotlib figures as ``imssim progress --html``); this widget shows its
:class:`~imssim.app.progress.ProgressPage`."""

from __future__ import annotations

import html

from PySide6 import QtCore, QtGui, QtWidgets

Qt = QtCore.Qt
COLUMNS = ("#", "Case", "Mode", "Course", "Finished", "Score", "Result", "Level error", "Clearance", "Mistakes")


def _local(when) -> str:
    """A finished time (ISO, UTC) as local time to the minute."""
    from datetime import datetime

    try:
        t = datetime.fromisoformat(str(when))
        return (t.astimezone() if t.tzinfo is not None else t).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(when or "")[:16].replace("T", " ")


class ProgressView(QtWidgets.QWidget):
    """Header (who, which case, what waits), the sessions table, the plots below it."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.page = None
        self.dirty = True
        self._pixmaps: list[tuple[QtWidgets.QLabel, QtGui.QPixmap]] = []
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        row = QtWidgets.QHBoxLayout()
        self.who = QtWidgets.QLabel()
        self.who.setStyleSheet("font-size:15px; font-weight:bold")
        row.addWidget(self.who)
        self.change_button = QtWidgets.QPushButton("Change...")
        self.change_button.setToolTip("Say who you are: your finished attempts are saved under this name")
        self.change_button.clicked.connect(win.ask_trainee)
        row.addWidget(self.change_button)
        row.addSpacing(16)
        row.addWidget(QtWidgets.QLabel("Case:"))
        self.case_combo = QtWidgets.QComboBox()
        self.case_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.case_combo.setMinimumContentsLength(16)
        self.case_combo.addItem("all cases", None)
        self.case_combo.currentIndexChanged.connect(lambda _i: self.refresh())
        row.addWidget(self.case_combo)
        row.addStretch(1)
        lay.addLayout(row)
        row = QtWidgets.QHBoxLayout()  # two rows: the tab fits beside the panels in a 1280-px window
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        row.addWidget(self.refresh_button)
        self.save_button = QtWidgets.QPushButton("Save waiting sessions")
        self.save_button.setToolTip("Save the attempts finished while the progress database could not be reached")
        self.save_button.clicked.connect(win.save_waiting)
        row.addWidget(self.save_button)
        row.addStretch(1)
        self.continue_button = QtWidgets.QPushButton("Continue course")
        self.continue_button.setToolTip("Open the next session of your course: the patient as your sessions "
                                        "left them  [Ctrl+Shift+C]")
        self.continue_button.clicked.connect(win.continue_course)
        row.addWidget(self.continue_button)
        lay.addLayout(row)
        self.info = QtWidgets.QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.RichText)
        lay.addWidget(self.info)
        split = QtWidgets.QSplitter(Qt.Vertical)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(True)
        split.addWidget(self.table)
        self.plots = QtWidgets.QScrollArea()
        self.plots.setWidgetResizable(True)
        inner = QtWidgets.QWidget()
        inner.setStyleSheet("background:white")
        self.plot_lay = QtWidgets.QVBoxLayout(inner)
        self.plot_lay.setAlignment(Qt.AlignTop | Qt.AlignHCenter)
        self.plots.setWidget(inner)
        split.addWidget(self.plots)
        split.setSizes([210, 600])
        split.setStretchFactor(1, 1)
        self.splitter = split
        lay.addWidget(split, 1)

    # -- filling -------------------------------------------------------------------------------
    def case(self) -> str | None:
        return self.case_combo.currentData()

    def refresh(self) -> None:
        """Read the store again and redraw (the plots take a moment: the cursor says so)."""
        QtWidgets.QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            page = self.win.progress.page(self.case())
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.show_page(page)

    def show_page(self, p) -> None:
        self.page = p
        self.dirty = False
        self.who.setText(f"Trainee: {p.trainee}" if p.trainee else "Trainee: (not given)")
        self.change_button.setText("Change..." if p.trainee else "Say who you are...")
        self._fill_cases(p)
        e = html.escape
        parts = []
        if p.error:
            parts.append(f"<span style='color:#b3151b;font-weight:bold'>{e(p.error)}</span>")
        elif p.summary:
            parts.append(e(p.summary))
        if p.course:
            parts.append(f"<b>{e(p.course)}</b>")
        if p.waiting:
            parts.append(f"<span style='color:#a35a00;font-weight:bold'>{p.waiting} finished attempt(s) waiting to "
                         "be saved</span>")
        parts.append(f"<span style='color:#667'>Database: {e(p.db)}</span>")
        self.info.setText(" &nbsp;&middot;&nbsp; ".join(parts))
        self.save_button.setText(f"Save waiting sessions ({p.waiting})" if p.waiting else "Save waiting sessions")
        self.save_button.setEnabled(bool(p.waiting))
        self._fill_table(p.sessions)
        self._fill_plots(p.figures)

    def _fill_cases(self, p) -> None:
        have = [self.case_combo.itemData(i) for i in range(self.case_combo.count())]
        want = [None] + list(p.cases)
        if p.case is not None and p.case not in want:
            want.append(p.case)
        if have == want:
            return
        self.case_combo.blockSignals(True)
        self.case_combo.clear()
        for c in want:
            self.case_combo.addItem("all cases" if c is None else c, c)
        self.case_combo.setCurrentIndex(max(0, want.index(p.case)))
        self.case_combo.blockSignals(False)

    def _fill_table(self, sessions) -> None:
        t = self.table
        t.setRowCount(0)
        for s in reversed(sessions):  # the latest first
            r = t.rowCount()
            t.insertRow(r)
            cells = [str(s["attempt"]), s["case"], s["mode"], str(s["course_session"] or ""),
                     _local(s["finished_at"]), f"{s['total']:.0f}%",
                     "pass" if s["passed"] else "FAIL",
                     "" if s["level_error"] is None else f"{s['level_error']:g}",
                     "" if s["min_clearance_mm"] is None else f"{s['min_clearance_mm']:.0f} mm",
                     "; ".join(s["mistakes"] or [])]
            for c, text in enumerate(cells):
                it = QtWidgets.QTableWidgetItem(text)
                if c in (0, 3, 5, 7, 8):
                    it.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 6:
                    it.setForeground(QtGui.QColor("#1d7a35" if s["passed"] else "#b3151b"))
                t.setItem(r, c, it)
        t.resizeColumnsToContents()
        last = len(COLUMNS) - 1
        t.horizontalHeader().setSectionResizeMode(last, QtWidgets.QHeaderView.Stretch)  # mistakes wrap
        t.resizeRowsToContents()

    def _fill_plots(self, figures) -> None:
        while self.plot_lay.count():
            w = self.plot_lay.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self._pixmaps = []
        if not figures:
            msg = QtWidgets.QLabel("No sessions saved yet: finish an attempt at a case and it appears here."
                                   if self.page is not None and self.page.trainee and not self.page.error else "")
            msg.setStyleSheet("color:#667; padding:20px")
            self.plot_lay.addWidget(msg)
            return
        for title, png in figures:
            pm = QtGui.QPixmap()
            pm.loadFromData(png, "PNG")
            cap = QtWidgets.QLabel(title)
            cap.setTextFormat(Qt.PlainText)
            cap.setStyleSheet("color:#667")
            img = QtWidgets.QLabel()
            img.setAlignment(Qt.AlignHCenter)
            img.setToolTip(title)
            self.plot_lay.addWidget(cap)
            self.plot_lay.addWidget(img)
            self._pixmaps.append((img, pm))
        self._scale()

    def _scale(self) -> None:
        """Each plot at its own size, smaller when the tab is narrower than it."""
        width = max(200, self.plots.viewport().width() - 30)
        for img, pm in self._pixmaps:
            img.setPixmap(pm if pm.width() <= width else
                          pm.scaledToWidth(width, Qt.SmoothTransformation))

    def plot_titles(self) -> list[str]:
        return [] if self.page is None else [t for t, _ in self.page.figures]

    def resizeEvent(self, ev):  # noqa: N802 (Qt API)
        super().resizeEvent(ev)
        self._scale()

    def showEvent(self, ev):  # noqa: N802 (Qt API)
        super().showEvent(ev)
        if self.dirty:
            QtCore.QTimer.singleShot(0, self.refresh)
