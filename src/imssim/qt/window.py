"""The trainee's main window: a thin Qt layer over :class:`~imssim.qt.controller.Controller`."""

from __future__ import annotations

import html

from PySide6 import QtCore, QtGui, QtWidgets
from pyvistaqt import QtInteractor

from ..core.atlas import Atlas
from ..render.scene import STYLE
from ..render.views import PRESETS
from .controller import Controller

Qt = QtCore.Qt
CLICK_SLOP_PX = 4
HOVER_DELAY_MS = 60

KIND_TITLES = {
    "skin": "Skin",
    "subcutaneous": "Subcutaneous fat",
    "muscle": "Muscles",
    "bone": "Bones",
    "organ": "Organs",
    "nerve": "Nerves",
    "vessel": "Vessels",
    "canal": "Spinal canal",
}
LEVEL_STYLE = {
    "info": "color:#1d2b36",
    "warn": "color:#a35a00",
    "danger": "color:#b3151b;font-weight:bold",
    "good": "color:#1d7a35;font-weight:bold",
}


def _rgb(c) -> str:
    return "#%02x%02x%02x" % tuple(int(255 * v) for v in c)


class StructureFilter(QtCore.QSortFilterProxyModel):
    pass


class MainWindow(QtWidgets.QMainWindow):
    """Main window. ``controller`` does the work; this class builds widgets and forwards events."""

    def __init__(self, atlas: Atlas, mode: str = "practice", index=None, parent=None):
        super().__init__(parent)
        self.atlas = atlas
        self.setWindowTitle("imssim - IMS dry needling trainer")
        self.resize(1280, 800)
        self.view3d = QtInteractor(self, auto_update=False)
        self.view3d.set_background("#dfe6ec", top="#f7f9fb")
        self.view3d.enable_anti_aliasing("fxaa")
        self.setCentralWidget(self.view3d)
        self.controller = Controller(atlas, self.view3d, index=index, mode=mode)
        self.controller.listeners.append(self._on_core_event)
        self._press = None
        self._aiming = False
        self._hover_pos = None
        self._hover_timer = QtCore.QTimer(self, singleShot=True, interval=HOVER_DELAY_MS)
        self._hover_timer.timeout.connect(self._do_hover)
        self._exam_start = None
        self._clock_timer = QtCore.QTimer(self, interval=1000)
        self._clock_timer.timeout.connect(self._tick)
        self.actions: dict[str, QtGui.QAction] = {}
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_explore_dock()
        self._build_needle_dock()
        self.status = self.statusBar()
        self.hover_label = QtWidgets.QLabel("")
        self.status.addPermanentWidget(self.hover_label)
        self.view3d.interactor.installEventFilter(self)
        self.view3d.interactor.setMouseTracking(True)
        self.resizeDocks([self.explore_dock, self.needle_dock], [300, 330], Qt.Horizontal)
        self._on_mode(mode)
        self._refresh_readout(None)
        self.status.showMessage("N: needle tool, then click the skin.  F1: all shortcuts.")

    # -- construction --------------------------------------------------------------------
    def _build_actions(self) -> None:
        for key, desc, fn in self.controller.shortcuts():
            a = QtGui.QAction(desc, self)
            a.setShortcut(QtGui.QKeySequence(key))
            a.setShortcutContext(Qt.WindowShortcut)
            a.setToolTip(f"{desc}  [{key}]")
            a.triggered.connect(lambda checked=False, fn=fn: fn())
            self.addAction(a)
            self.actions[key] = a
        help_a = QtGui.QAction("Keyboard shortcuts", self, shortcut=QtGui.QKeySequence("F1"))
        help_a.triggered.connect(self.show_help)
        self.addAction(help_a)
        self.actions["F1"] = help_a
        about = QtGui.QAction("About and credits", self)
        about.triggered.connect(self.show_about)
        self.actions["about"] = about
        shot = QtGui.QAction("Save picture of the window...", self, shortcut=QtGui.QKeySequence("Ctrl+Shift+S"))
        shot.triggered.connect(self._ask_screenshot)
        self.actions["shot"] = shot
        find = QtGui.QAction("Find structure", self, shortcut=QtGui.QKeySequence("Ctrl+F"))
        find.triggered.connect(lambda: (self.filter_edit.setFocus(), self.filter_edit.selectAll()))
        self.addAction(find)
        self.actions["find"] = find

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.open_action = f.addAction("Open scenario... (scenario engine not in this build)")
        self.open_action.setEnabled(False)
        f.addAction(self.actions["shot"])
        f.addSeparator()
        q = f.addAction("Quit", self.close)
        q.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
        v = mb.addMenu("&View")
        for p in PRESETS.values():
            v.addAction(self.actions[p.key])
        n = mb.addMenu("&Needle")
        for k in ("N", "Esc", "Up", "Down", "Shift+Up", "Shift+Down", "A", "D", "W", "S", "R", "Tab", "Delete"):
            n.addAction(self.actions[k])
        h = mb.addMenu("&Help")
        h.addAction(self.actions["F1"])
        h.addAction(self.actions["about"])

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Session")
        tb.setObjectName("session")
        tb.setMovable(False)
        tb.addWidget(QtWidgets.QLabel(" Mode: "))
        self.mode_combo = QtWidgets.QComboBox()
        self.mode_combo.addItems(["practice", "quiz", "exam"])
        self.mode_combo.setToolTip("Practice: names and hints shown. Quiz: questions, no names. "
                                   "Exam: no names or hints, timed, graded at the end.")
        self.mode_combo.currentTextChanged.connect(self.set_mode)
        tb.addWidget(self.mode_combo)
        tb.addSeparator()
        self.tool_group = QtGui.QActionGroup(self)
        for tool, key, text in (("look", "Esc", "Look"), ("needle", "N", "Needle"), ("palpate", None, "Palpate")):
            a = QtGui.QAction(text, self, checkable=True)
            a.setToolTip(self.actions[key].toolTip() if key else
                         "Palpate: click the skin to feel for tender points (needs the scenario engine, not in this build)")
            a.triggered.connect(lambda checked=False, t=tool: self.controller.set_tool(t))
            self.tool_group.addAction(a)
            tb.addAction(a)
            if tool == "palpate":
                a.setEnabled(False)
            setattr(self, f"tool_{tool}", a)
        self.tool_look.setChecked(True)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Needle: "))
        self.length_combo = QtWidgets.QComboBox()
        from ..core.needle import PRESET_LENGTHS_MM

        for L in PRESET_LENGTHS_MM:
            self.length_combo.addItem(f"{L} mm x 0.25 mm", L)
        self.length_combo.setCurrentIndex(list(PRESET_LENGTHS_MM).index(50))
        self.length_combo.setToolTip("Length of the next needle you insert")
        self.length_combo.currentIndexChanged.connect(
            lambda i: self.controller.set_needle_length(self.length_combo.itemData(i)))
        tb.addWidget(self.length_combo)
        tb.addSeparator()
        self.finish_button = QtWidgets.QPushButton("Finish and score")
        self.finish_button.setEnabled(False)
        self.finish_button.setToolTip("Score the session (needs the scoring engine, not in this build)")
        tb.addWidget(self.finish_button)
        spacer = QtWidgets.QWidget()
        spacer.setSizePolicy(QtWidgets.QSizePolicy.Expanding, QtWidgets.QSizePolicy.Preferred)
        tb.addWidget(spacer)
        self.timer_label = QtWidgets.QLabel("")
        self.timer_label.setStyleSheet("font-weight:bold; padding-right:8px")
        tb.addWidget(self.timer_label)

    def _build_explore_dock(self) -> None:
        dock = QtWidgets.QDockWidget("Explore", self)
        dock.setObjectName("explore")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable)
        w = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(w)
        lay.setContentsMargins(6, 6, 6, 6)
        # views
        views = QtWidgets.QGroupBox("Views")
        g = QtWidgets.QGridLayout(views)
        g.setSpacing(3)
        short = {"posterior": "Posterior", "lateral": "Lateral", "neck": "Neck", "thorax": "Thorax",
                 "lumbar": "Lumbar", "buttock": "Buttock", "leg": "Leg", "anterior": "Anterior"}
        self.view_buttons = {}
        for i, (name, p) in enumerate(PRESETS.items()):
            b = QtWidgets.QPushButton(f"{short.get(name, name)}")
            b.setToolTip(f"{p.title}  [{p.key}]")
            b.clicked.connect(lambda checked=False, n=name: self.controller.view(n))
            g.addWidget(b, i // 4, i % 4)
            self.view_buttons[name] = b
        lay.addWidget(views)
        # layers
        layers = QtWidgets.QGroupBox("Layers")
        gl = QtWidgets.QGridLayout(layers)
        gl.setSpacing(2)
        kinds = [k for k in KIND_TITLES if any(s.kind == k for s in self.atlas)]
        self.kind_checks, self.kind_sliders = {}, {}
        for r, k in enumerate(kinds):
            cb = QtWidgets.QCheckBox(KIND_TITLES[k])
            op = STYLE.get(k, ((0, 0, 0), 1.0))[1]
            cb.setChecked(op > 0)
            sl = QtWidgets.QSlider(Qt.Horizontal)
            sl.setRange(0, 100)
            sl.setValue(int(round((op if op > 0 else 0.5) * 100)))
            sl.setToolTip(f"{KIND_TITLES[k]} opacity")
            cb.toggled.connect(lambda on, k=k: self._kind_toggled(k, on))
            sl.valueChanged.connect(lambda v, k=k: self._kind_opacity(k, v))
            gl.addWidget(cb, r, 0)
            gl.addWidget(sl, r, 1)
            self.kind_checks[k], self.kind_sliders[k] = cb, sl
        r = len(kinds)
        self.danger_check = QtWidgets.QCheckBox("Danger structures")
        has_danger = any(s.is_danger for s in self.atlas)
        self.danger_check.setChecked(has_danger)
        self.danger_check.setEnabled(has_danger)
        self.danger_check.setToolTip("Lungs/pleura, spinal canal, arteries, nerves, kidneys"
                                     + ("" if has_danger else " (none in this atlas)"))
        self.danger_check.toggled.connect(self.controller.set_danger_visible)
        gl.addWidget(self.danger_check, r, 0, 1, 2)
        lay.addWidget(layers)
        # muscles by region
        regions = sorted({s.region for s in self.atlas if s.kind == "muscle"})
        reg = QtWidgets.QGroupBox("Muscles by region")
        rg = QtWidgets.QGridLayout(reg)
        rg.setSpacing(2)
        self.region_checks = {}
        for i, rname in enumerate(regions):
            cb = QtWidgets.QCheckBox(rname)
            cb.setChecked(True)
            cb.toggled.connect(lambda on, rn=rname: self.controller.set_region_visible(rn, on))
            rg.addWidget(cb, i // 3, i % 3)
            self.region_checks[rname] = cb
        lay.addWidget(reg)
        # structure list
        sl = QtWidgets.QGroupBox("Structures")
        sv = QtWidgets.QVBoxLayout(sl)
        self.filter_edit = QtWidgets.QLineEdit()
        self.filter_edit.setPlaceholderText("Filter, e.g. multifidus L5   [Ctrl+F]")
        self.filter_edit.setClearButtonEnabled(True)
        self.structure_model = QtGui.QStandardItemModel(self)
        for s in sorted(self.atlas, key=lambda s: (s.kind, s.name)):
            it = QtGui.QStandardItem(f"{s.name}  ({s.kind})")
            it.setData(s.id, Qt.UserRole)
            it.setEditable(False)
            self.structure_model.appendRow(it)
        self.structure_proxy = StructureFilter(self)
        self.structure_proxy.setSourceModel(self.structure_model)
        self.structure_proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.filter_edit.textChanged.connect(self._filter_changed)
        self.structure_list = QtWidgets.QListView()
        self.structure_list.setModel(self.structure_proxy)
        self.structure_list.setToolTip("Click: highlight. Double-click: highlight and look at it.")
        self.structure_list.clicked.connect(lambda ix: self._list_select(ix, False))
        self.structure_list.doubleClicked.connect(lambda ix: self._list_select(ix, True))
        sv.addWidget(self.filter_edit)
        sv.addWidget(self.structure_list, 1)
        self.structure_hidden_label = QtWidgets.QLabel("Names are hidden in quiz and exam mode.")
        self.structure_hidden_label.setWordWrap(True)
        sv.addWidget(self.structure_hidden_label)
        lay.addWidget(sl, 1)
        dock.setWidget(w)
        dock.setMinimumWidth(260)
        dock.setMaximumWidth(300)
        self.addDockWidget(Qt.LeftDockWidgetArea, dock)
        self.explore_dock = dock

    def _build_needle_dock(self) -> None:
        dock = QtWidgets.QDockWidget("Case and needle", self)
        dock.setObjectName("needle")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable)
        self.tabs = QtWidgets.QTabWidget()
        # case brief
        case = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(case)
        self.brief = QtWidgets.QTextBrowser()
        self.brief.setHtml("<h3>No case loaded</h3><p>The scenario engine is not part of this build yet, so "
                           "there is no patient to read about. You can still explore the anatomy and practise "
                           "needle placement: press <b>N</b> and click the skin.</p>")
        cl.addWidget(self.brief)
        self.scenario_button = QtWidgets.QPushButton("Choose a scenario... (not available in this build)")
        self.scenario_button.setEnabled(False)
        cl.addWidget(self.scenario_button)
        self.tabs.addTab(case, "Case")
        # needle readout + feedback
        nd = QtWidgets.QWidget()
        nl = QtWidgets.QVBoxLayout(nd)
        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(Qt.AlignRight)
        self.r_needle = QtWidgets.QLabel()
        self.r_depth = QtWidgets.QLabel()
        self.r_depth.setStyleSheet("font-size:20px; font-weight:bold")
        self.r_angles = QtWidgets.QLabel()
        self.r_tip = QtWidgets.QLabel()
        self.r_tip.setWordWrap(True)
        self.r_tip.setStyleSheet("font-weight:bold")
        self.r_layers = QtWidgets.QLabel()
        self.r_layers.setWordWrap(True)
        self.r_clear = QtWidgets.QLabel()
        self.r_clear.setWordWrap(True)
        form.addRow("Needle:", self.r_needle)
        form.addRow("Depth:", self.r_depth)
        form.addRow("Angle:", self.r_angles)
        form.addRow("Tip in:", self.r_tip)
        form.addRow("Passed:", self.r_layers)
        form.addRow("Danger:", self.r_clear)
        nl.addLayout(form)
        nl.addWidget(QtWidgets.QLabel("<b>Feedback</b>"))
        self.feedback_view = QtWidgets.QTextBrowser()
        nl.addWidget(self.feedback_view, 1)
        self.tabs.addTab(nd, "Needle")
        quiz = QtWidgets.QWidget()
        ql = QtWidgets.QVBoxLayout(quiz)
        ql.addWidget(QtWidgets.QLabel("Quiz questions come from the scenario; the scenario engine is not "
                                      "in this build."))
        ql.addStretch(1)
        self.tabs.addTab(quiz, "Quiz")
        self.tabs.setTabEnabled(2, False)
        self.tabs.setCurrentIndex(1)
        dock.setWidget(self.tabs)
        dock.setMinimumWidth(300)
        dock.setMaximumWidth(340)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        self.needle_dock = dock

    # -- widget -> controller -------------------------------------------------------------
    def _kind_toggled(self, kind: str, on: bool) -> None:
        if on:
            self.controller.set_kind_opacity(kind, self.kind_sliders[kind].value() / 100.0)
        else:
            self.controller.set_kind_visible(kind, False)

    def _kind_opacity(self, kind: str, v: int) -> None:
        if self.kind_checks[kind].isChecked():
            self.controller.set_kind_opacity(kind, v / 100.0)

    def _filter_changed(self, text: str) -> None:
        self.structure_proxy.setFilterRegularExpression(
            QtCore.QRegularExpression(".*".join(QtCore.QRegularExpression.escape(w) for w in text.split()),
                                      QtCore.QRegularExpression.CaseInsensitiveOption))

    def _list_select(self, ix, focus: bool) -> None:
        sid = self.structure_proxy.data(ix, Qt.UserRole)
        self.controller.select_structure(sid, focus=focus)

    def set_mode(self, mode: str) -> None:
        if self.mode_combo.currentText() != mode:
            self.mode_combo.setCurrentText(mode)  # re-enters through the signal
            return
        self.controller.set_mode(mode)

    # -- controller -> widgets --------------------------------------------------------------
    def _on_core_event(self, event: str, data: dict) -> None:
        if event == "needle":
            self._refresh_readout(data["readout"])
        elif event == "feedback":
            style = LEVEL_STYLE.get(data["level"], "")
            self.feedback_view.append(f'<span style="{style}">{html.escape(data["text"])}</span>')
            self.status.showMessage(data["text"], 8000)
        elif event == "hover":
            self.hover_label.setText(data["text"] or "")
        elif event == "mode":
            self._on_mode(data["mode"])
        elif event == "tool":
            getattr(self, f"tool_{data['tool']}").setChecked(True)
            self.view3d.interactor.setCursor(Qt.CrossCursor if data["tool"] != "look" else Qt.ArrowCursor)
        elif event == "danger":
            self.tabs.setCurrentIndex(1)

    def _on_mode(self, mode: str) -> None:
        names = mode == "practice"
        self.structure_list.setEnabled(names)
        self.filter_edit.setEnabled(names)
        self.structure_list.setVisible(names)
        self.structure_hidden_label.setVisible(not names)
        self.hover_label.setText("")
        if mode == "exam":
            self._exam_start = QtCore.QElapsedTimer()
            self._exam_start.start()
            self._clock_timer.start()
            self._tick()
        else:
            self._exam_start = None
            self._clock_timer.stop()
            self.timer_label.setText("")
        self._refresh_readout(self.controller.readout())

    def _tick(self) -> None:
        if self._exam_start is None:
            return
        s = self._exam_start.elapsed() // 1000
        self.timer_label.setText(f"EXAM  {s // 60:02d}:{s % 60:02d}")

    def _refresh_readout(self, r: dict | None) -> None:
        if r is None:
            self.r_needle.setText("none - press N and click the skin")
            for w in (self.r_depth, self.r_angles, self.r_tip, self.r_layers, self.r_clear):
                w.setText("-")
            self.r_clear.setStyleSheet("")
            return
        self.r_needle.setText(f"{r['needle']} of {r['count']}  ({r['length']:g} mm)")
        self.r_depth.setText(f"{r['depth']:.1f} mm")
        med = r["medial_deg"]
        cau = r["caudal_deg"]
        self.r_angles.setText(f"{abs(med):.0f}\N{DEGREE SIGN} {'medial' if med >= 0 else 'lateral'}, "
                              f"{abs(cau):.0f}\N{DEGREE SIGN} {'caudal' if cau >= 0 else 'cranial'}  "
                              f"(tilt {r['tilt_deg']:.0f}\N{DEGREE SIGN})")
        self.r_tip.setText(r["tip"])
        self.r_layers.setText(" \N{RIGHTWARDS ARROW} ".join(r["layers"]) or "-")
        if r["clearance_mm"] is None:
            self.r_clear.setText("no danger structure within 10 cm")
            self.r_clear.setStyleSheet(f"color:{_rgb(r['clearance_colour'])}; font-weight:bold")
        else:
            self.r_clear.setText(f"{r['clearance_mm']:.0f} mm from {r['clearance_of']}")
            self.r_clear.setStyleSheet(f"color:white; background:{_rgb(r['clearance_colour'])}; "
                                       "font-weight:bold; padding:2px")
        if r["stopped"]:
            self.r_clear.setText("STOPPED: " + r["stopped"])
            self.r_clear.setStyleSheet("color:white; background:#b3151b; font-weight:bold; padding:2px")

    # -- 3D view events -------------------------------------------------------------------
    def _display_xy(self, pos) -> tuple[float, float]:
        r = self.view3d.interactor.devicePixelRatioF()
        h = self.view3d.interactor.height()
        return pos.x() * r, (h - pos.y() - 1) * r

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        t = ev.type()
        E = QtCore.QEvent
        if t == E.MouseButtonPress and ev.button() == Qt.LeftButton:
            self._press = ev.position()
            if ev.modifiers() & Qt.ControlModifier and self.controller.current is not None:
                self._aiming = True
                return True
        elif t == E.MouseMove:
            if self._aiming and self._press is not None:
                p = ev.position()
                self.controller.on_drag_aim(p.x() - self._press.x(), -(p.y() - self._press.y()))
                self._press = p
                return True
            if not ev.buttons():
                self._hover_pos = ev.position()
                self._hover_timer.start()
        elif t == E.MouseButtonRelease and ev.button() == Qt.LeftButton:
            was_aiming, self._aiming = self._aiming, False
            p0, self._press = self._press, None
            if was_aiming:
                return True
            p = ev.position()
            if p0 is not None and abs(p.x() - p0.x()) + abs(p.y() - p0.y()) <= CLICK_SLOP_PX:
                self.controller.on_click(*self._display_xy(p))
        elif t == E.Wheel:
            steps = ev.angleDelta().y() / 120.0
            if steps and self.controller.on_wheel(int(round(steps)) or (1 if steps > 0 else -1),
                                                  fine=bool(ev.modifiers() & Qt.ShiftModifier)):
                return True
        elif t in (E.KeyPress, E.KeyRelease):
            return True  # keys go through the window's shortcuts, never VTK's own (e/q quit, w wireframe)
        return super().eventFilter(obj, ev)

    def _do_hover(self) -> None:
        if self._hover_pos is not None:
            self.controller.on_hover(*self._display_xy(self._hover_pos))

    # -- dialogs ---------------------------------------------------------------------------
    def shortcut_rows(self) -> list[tuple[str, str]]:
        rows = [(k, d) for k, d, _ in self.controller.shortcuts()]
        rows += [("Wheel", "Advance / withdraw the needle (needle tool); zoom otherwise"),
                 ("Shift+Wheel", "Fine steps (0.5 mm)"),
                 ("Ctrl+drag", "Aim the selected needle"),
                 ("Drag", "Rotate the view (Shift+drag pans)"),
                 ("Ctrl+F", "Find a structure"),
                 ("F1", "This help")]
        return rows

    def show_help(self) -> QtWidgets.QDialog:
        d = QtWidgets.QDialog(self)
        d.setWindowTitle("imssim - keyboard and mouse")
        lay = QtWidgets.QVBoxLayout(d)
        table = QtWidgets.QTableWidget(0, 2)
        table.setHorizontalHeaderLabels(["Key", "Does"])
        for k, desc in self.shortcut_rows():
            r = table.rowCount()
            table.insertRow(r)
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(k))
            table.setItem(r, 1, QtWidgets.QTableWidgetItem(desc))
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().hide()
        table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        table.resizeColumnsToContents()
        lay.addWidget(table)
        d.resize(560, 600)
        d.show()
        self.help_dialog = d
        return d

    def about_html(self) -> str:
        parts = ["<h3>imssim</h3><p>A training simulator for Intramuscular Stimulation (Gunn IMS) "
                 "dry needling. For education only: not a clinical tool.</p><h4>Anatomy credits</h4><ul>"]
        for a in self.atlas.attributions:
            parts.append(f"<li><b>{html.escape(a.source)}</b> ({html.escape(a.licence)}): "
                         f"{html.escape(a.attribution)} <a href='{html.escape(a.url)}'>{html.escape(a.url)}</a></li>")
        parts.append("</ul><p>Software: Qt (PySide6), VTK / PyVista, NumPy, SciPy, trimesh, Embree.</p>")
        return "".join(parts)

    def show_about(self) -> QtWidgets.QDialog:
        d = QtWidgets.QDialog(self)
        d.setWindowTitle("About imssim")
        lay = QtWidgets.QVBoxLayout(d)
        t = QtWidgets.QTextBrowser()
        t.setOpenExternalLinks(True)
        t.setHtml(self.about_html())
        lay.addWidget(t)
        d.resize(560, 420)
        d.show()
        self.about_dialog = d
        return d

    def _ask_screenshot(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save picture", "imssim.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str) -> bool:
        """Grab the whole window, including the 3D view, to a PNG."""
        self.controller.render()
        QtWidgets.QApplication.processEvents()
        return self.grab().save(str(path), "PNG")

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not getattr(self, "_shown", False):
            self._shown = True
            QtCore.QTimer.singleShot(0, lambda: self.controller.view("posterior"))

    def closeEvent(self, ev):  # noqa: N802
        self._clock_timer.stop()
        self._hover_timer.stop()
        self.view3d.close()
        super().closeEvent(ev)
