"""The Author panel: widgets over :class:`imssim.app.authoring.AuthorDesk` (no logic here).

Form fields commit an edit when they lose the focus or Enter is pressed (each one an undo
step); clicks on the body place points (the controller's "point" tool); the muscle list
offers the diagnosis's myotome first."""

from __future__ import annotations

import html

from PySide6 import QtCore, QtGui, QtWidgets

Qt = QtCore.Qt


class _CommitOnFocusOut(QtCore.QObject):
    """A text box's edit is committed when it loses the focus."""

    def __init__(self, panel):
        super().__init__(panel)
        self.panel = panel

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        if ev.type() == QtCore.QEvent.FocusOut:
            self.panel.commit_form()
        return False


class AuthorPanel(QtWidgets.QWidget):
    """Everything Author mode shows beside the 3D view."""

    def __init__(self, win, desk):
        super().__init__(win)
        self.win, self.desk = win, desk
        self._filling = False
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        # file row
        row = QtWidgets.QHBoxLayout()
        self.new_button = QtWidgets.QPushButton("New...")
        self.new_button.setToolTip("A new case from the template (imssim scenario new): segment, side, condition")
        self.new_button.clicked.connect(win.author_new)
        self.open_button = QtWidgets.QPushButton("Open...")
        self.open_button.clicked.connect(win.author_open)
        self.save_button = QtWidgets.QPushButton("Save")
        self.save_button.setToolTip("Save the case (the file it replaces is kept as NAME.bak)  [Ctrl+S]")
        self.save_button.clicked.connect(lambda: win.author_save())
        self.save_as_button = QtWidgets.QPushButton("Save as...")
        self.save_as_button.clicked.connect(lambda: win.author_save(ask=True))
        for b in (self.new_button, self.open_button, self.save_button, self.save_as_button):
            row.addWidget(b)
        lay.addLayout(row)
        row = QtWidgets.QHBoxLayout()
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.undo_button.clicked.connect(win.author_undo)
        self.redo_button = QtWidgets.QPushButton("Redo")
        self.redo_button.clicked.connect(win.author_redo)
        self.preview_button = QtWidgets.QPushButton("Preview as student")
        self.preview_button.setToolTip("Open the case as it stands in practice mode (Mode: author to go back)")
        self.preview_button.clicked.connect(lambda: win.set_mode("practice"))
        for b in (self.undo_button, self.redo_button, self.preview_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.file_label = QtWidgets.QLabel("No case: New... or Open...")
        self.file_label.setWordWrap(True)
        lay.addWidget(self.file_label)

        self.tabs = QtWidgets.QTabWidget()
        lay.addWidget(self.tabs, 1)
        # -- the case's fields
        form_w = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(form_w)
        form.setLabelAlignment(Qt.AlignRight)
        self.edits: dict[str, QtWidgets.QWidget] = {}
        self._focus = _CommitOnFocusOut(self)
        for name, label in (("title", "Title"), ("author", "Author")):
            e = QtWidgets.QLineEdit()
            e.editingFinished.connect(self.commit_form)
            form.addRow(label + ":", e)
            self.edits[name] = e
        pat = QtWidgets.QHBoxLayout()
        self.age = QtWidgets.QSpinBox()
        self.age.setRange(12, 110)
        self.age.editingFinished.connect(self.commit_form)
        self.edits["age"] = self.age
        pat.addWidget(self.age)
        for name, items in (("sex", ["female", "male", "other"]), ("habitus", ["lean", "average", "obese"])):
            c = QtWidgets.QComboBox()
            c.addItems(items)
            c.activated.connect(lambda _i, n=name: self._combo(n))
            self.edits[name] = c
            pat.addWidget(c)
        form.addRow("Patient:", pat)
        for name, label in (("complaint", "Complaint"), ("history", "History")):
            t = QtWidgets.QPlainTextEdit()
            t.setTabChangesFocus(True)
            t.setMaximumHeight(70 if name == "complaint" else 110)
            t.installEventFilter(self._focus)
            form.addRow(label + ":", t)
            self.edits[name] = t
        self.edits["condition"] = QtWidgets.QLineEdit()
        self.edits["condition"].editingFinished.connect(self.commit_form)
        form.addRow("Diagnosis:", self.edits["condition"])
        dx = QtWidgets.QHBoxLayout()
        self.edits["segments"] = QtWidgets.QLineEdit()
        self.edits["segments"].setPlaceholderText("e.g. L5 or C5, C6")
        self.edits["segments"].setToolTip("The diagnosed spinal segment(s); the muscle list offers their myotome first")
        self.edits["segments"].editingFinished.connect(self.commit_form)
        dx.addWidget(self.edits["segments"], 1)
        side = QtWidgets.QComboBox()
        side.addItems(["left", "right", "bilateral"])
        side.activated.connect(lambda _i: self._combo("side"))
        self.edits["side"] = side
        dx.addWidget(side)
        form.addRow("Segments:", dx)
        self.tabs.addTab(form_w, "Case")
        # -- points on the body
        pts = QtWidgets.QWidget()
        pl = QtWidgets.QVBoxLayout(pts)
        pl.addWidget(QtWidgets.QLabel("Click the body to place a point (the <b>Point</b> tool)."))
        opt = QtWidgets.QHBoxLayout()
        self.kind_combo = QtWidgets.QComboBox()
        self.kind_combo.addItem("Tender point", "tender_point")
        self.kind_combo.addItem("Taut band", "taut_band")
        self.kind_combo.currentIndexChanged.connect(lambda i: setattr(desk, "kind", self.kind_combo.itemData(i)))
        opt.addWidget(self.kind_combo)
        self.snap_combo = QtWidgets.QComboBox()
        self.snap_combo.addItem("in the muscle under the click", "muscle")
        self.snap_combo.addItem("on the skin", "skin")
        self.snap_combo.currentIndexChanged.connect(lambda i: setattr(desk, "snap", self.snap_combo.itemData(i)))
        opt.addWidget(self.snap_combo, 1)
        pl.addLayout(opt)
        self.point_list = QtWidgets.QListWidget()
        self.point_list.setToolTip("Double-click a point to write what the student's palpation finds there")
        self.point_list.itemDoubleClicked.connect(self._describe_point)
        pl.addWidget(self.point_list, 1)
        self.point_text = QtWidgets.QLabel()
        self.point_text.setWordWrap(True)
        self.point_list.currentRowChanged.connect(self._show_point)
        pl.addWidget(self.point_text)
        self.remove_point_button = QtWidgets.QPushButton("Remove the selected point")
        self.remove_point_button.clicked.connect(self._remove_point)
        pl.addWidget(self.remove_point_button)
        self.tabs.addTab(pts, "Tender points")
        # -- supersensitive muscles
        mus = QtWidgets.QWidget()
        ml = QtWidgets.QVBoxLayout(mus)
        self.muscle_note = QtWidgets.QLabel()
        self.muscle_note.setWordWrap(True)
        ml.addWidget(self.muscle_note)
        self.muscle_filter = QtWidgets.QLineEdit()
        self.muscle_filter.setPlaceholderText("Filter muscles")
        self.muscle_filter.textChanged.connect(self._filter_muscles)
        ml.addWidget(self.muscle_filter)
        self.muscle_list = QtWidgets.QListWidget()
        self.muscle_list.itemChanged.connect(self._muscle_toggled)
        ml.addWidget(self.muscle_list, 1)
        self.tabs.addTab(mus, "Supersensitive")
        # -- check
        chk = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(chk)
        self.check_button = QtWidgets.QPushButton("Check the case (what `imssim scenario validate` says)")
        self.check_button.clicked.connect(self.show_issues)
        cl.addWidget(self.check_button)
        self.issues_view = QtWidgets.QTextBrowser()
        cl.addWidget(self.issues_view, 1)
        self.tabs.addTab(chk, "Check")
        self.refresh()

    # -- widgets -> desk ------------------------------------------------------------------------
    def _text(self, name: str) -> str:
        w = self.edits[name]
        return w.toPlainText() if isinstance(w, QtWidgets.QPlainTextEdit) else w.text()

    def commit_form(self) -> None:
        """Every form field that differs from the case becomes an edit (one undo step each)."""
        a = self.desk.authoring
        if a is None or self._filling:
            return
        for name in ("title", "author", "complaint", "history", "condition"):
            v = self._text(name)
            if " ".join(v.split()) != " ".join(str(a.field(name)).split()):
                self.desk.set_field(name, v)
        if self.age.value() != a.field("age"):
            self.desk.set_field("age", self.age.value())
        segs = [x for x in self._text("segments").replace(",", " ").replace("/", " ").upper().split() if x]
        if segs != a.field("segments"):
            self.desk.set_field("segments", segs)

    def _combo(self, name: str) -> None:
        if self.desk.authoring is not None and not self._filling:
            self.desk.set_field(name, self.edits[name].currentText())

    def _show_point(self, row: int) -> None:
        a = self.desk.authoring
        it = self.point_list.item(row) if row >= 0 else None
        if a is None or it is None:
            self.point_text.setText("")
            return
        f = a.scenario.patient.findings[it.data(Qt.UserRole)]
        self.point_text.setText(f"<i>Palpation says:</i> {html.escape(f.description)} "
                                "<span style='color:#556'>(double-click to change)</span>")

    def _describe_point(self, item) -> None:
        a = self.desk.authoring
        if a is None:
            return
        i = item.data(Qt.UserRole)
        text, ok = QtWidgets.QInputDialog.getText(self, "What the student feels",
                                                  "What palpation finds at this point:",
                                                  text=a.scenario.patient.findings[i].description)
        if ok and text.strip():
            self.desk.describe_point(i, text)

    def _remove_point(self) -> None:
        it = self.point_list.currentItem()
        if it is not None:
            self.desk.remove_point(it.data(Qt.UserRole))

    def _muscle_toggled(self, item) -> None:
        if self._filling:
            return
        self.desk.set_supersensitive(item.data(Qt.UserRole), item.checkState() == Qt.Checked)

    def _filter_muscles(self, text: str) -> None:
        t = text.strip().lower()
        for i in range(self.muscle_list.count()):
            it = self.muscle_list.item(i)
            it.setHidden(bool(t) and t not in it.text().lower())

    def show_issues(self) -> list:
        a = self.desk.authoring
        issues = [] if a is None else a.issues()
        if a is None:
            self.issues_view.setHtml("<p>No case.</p>")
        elif not issues:
            self.issues_view.setHtml("<p style='color:#1d7a35'><b>Nothing to report:</b> the case passes "
                                     "<code>imssim scenario validate --strict</code>.</p>")
        else:
            rows = "".join(f"<li><b>{html.escape(i.path or '-')}</b>: {html.escape(i.message)}</li>" for i in issues)
            self.issues_view.setHtml(f"<p>{len(issues)} thing(s) to look at before students see the case:</p>"
                                     f"<ul>{rows}</ul>")
        return issues

    # -- desk -> widgets -------------------------------------------------------------------------
    def refresh(self) -> None:
        a = self.desk.authoring
        self._filling = True
        try:
            on = a is not None
            for w in (self.save_button, self.save_as_button, self.preview_button, self.tabs):
                w.setEnabled(on)
            self.undo_button.setEnabled(on and a.can_undo)
            self.redo_button.setEnabled(on and a.can_redo)
            self.undo_button.setToolTip(f"Undo: {a.undo_label}  [Ctrl+Z]" if on and a.can_undo else "Nothing to undo")
            self.redo_button.setToolTip(f"Redo: {a.redo_label}  [Ctrl+Shift+Z]" if on and a.can_redo
                                        else "Nothing to redo")
            if not on:
                self.file_label.setText("No case: <b>New...</b> (from the template) or <b>Open...</b>")
                return
            sc = a.scenario
            where = str(a.path) if a.path is not None else "not saved yet"
            self.file_label.setText(f"<b>{html.escape(sc.id)}</b> ({html.escape(where)})"
                                    + (" <span style='color:#a35a00'>&bull; unsaved changes</span>" if a.dirty else ""))
            for name in ("title", "author", "complaint", "history", "condition"):
                w, v = self.edits[name], str(a.field(name))
                if self._text(name) != v and not w.hasFocus():
                    if isinstance(w, QtWidgets.QPlainTextEdit):
                        w.setPlainText(v)
                    else:
                        w.setText(v)
                        w.setCursorPosition(0)  # a long title shows its beginning
            self.age.setValue(a.field("age"))
            for name in ("sex", "habitus", "side"):
                self.edits[name].setCurrentText(a.field(name))
            segs = ", ".join(a.field("segments"))
            if not self.edits["segments"].hasFocus() or self._text("segments").strip() == "":
                self.edits["segments"].setText(segs)
            # points
            cur = self.point_list.currentRow()
            self.point_list.clear()
            for k, (i, f) in enumerate(a.points, 1):
                where = a.name(f.structure) if f.structure else "skin"
                pos = (" (no position)" if f.locus is None else " (on the skin)" if f.locus.snap is False else "")
                it = QtWidgets.QListWidgetItem(f"{k}. {f.kind.replace('_', ' ')}: {where}{pos}")
                it.setToolTip(f.description + ("\nNo position: felt anywhere over the muscle." if f.locus is None
                                               else ""))
                it.setData(Qt.UserRole, i)
                self.point_list.addItem(it)
            if self.point_list.count():
                self.point_list.setCurrentRow(min(max(cur, 0), self.point_list.count() - 1))
            self._show_point(self.point_list.currentRow())
            self.remove_point_button.setEnabled(self.point_list.count() > 0)
            # muscles: the diagnosis's myotome first
            chosen = set(a.supersensitive)
            choices = a.muscle_choices()
            self.muscle_note.setText(f"Muscles supplied by {', '.join(sc.diagnosis.segments)} "
                                     f"({sc.diagnosis.side}) first; {len(chosen)} supersensitive.")
            self.muscle_list.clear()
            bold = QtGui.QFont()
            bold.setBold(True)
            for m in choices:
                segs = "-".join(m.segments[:1] + m.segments[-1:]) if len(m.segments) > 1 else "".join(m.segments)
                it = QtWidgets.QListWidgetItem(f"{m.name}" + (f"  ({segs})" if segs else ""))
                it.setData(Qt.UserRole, m.id)
                it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
                it.setCheckState(Qt.Checked if m.id in chosen else Qt.Unchecked)
                if m.supplied:
                    it.setFont(bold)
                    it.setToolTip(f"supplied by the diagnosed segment(s) {', '.join(sc.diagnosis.segments)}")
                self.muscle_list.addItem(it)
            self._filter_muscles(self.muscle_filter.text())
        finally:
            self._filling = False
