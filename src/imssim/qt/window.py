"""The trainee's main window: a thin Qt view over :class:`~imssim.app.controller.Controller`.

Widgets call the controller; the controller's typed events come back through one table
(``MainWindow.handlers``: event type -> method). The window keeps only view state."""

from __future__ import annotations

import html
import re
import time

from PySide6 import QtCore, QtGui, QtWidgets
from pyvistaqt import QtInteractor

from ..app import events as ev
from ..app.authoring import AuthorDesk
from ..app.controller import Controller
from ..app.progress import ProgressDesk
from ..core.model.atlas import Atlas
from ..render.backdrop import SceneBackdrop
from ..render.lod import InteractionLOD
from ..render.scene import STYLE
from ..render.views import PRESETS

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
    "connective": "Fascia, ligaments, discs",
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


#: how long the muscle takes to ease out after a twitch (the release animation), s
RELEASE_S = 1.2


def natural_key(text: str) -> list:
    """Sort "T2" before "T10" (numbers compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


#: keys a list, text field or drop-down needs for itself: while one of those has the focus
#: the window's shortcuts on these keys (Up/Down move the needle, Tab selects a needle,
#: Delete removes one, Esc picks the look tool) give way to the widget
WIDGET_KEYS = {Qt.Key_Up, Qt.Key_Down, Qt.Key_Left, Qt.Key_Right, Qt.Key_PageUp, Qt.Key_PageDown,
               Qt.Key_Home, Qt.Key_End, Qt.Key_Tab, Qt.Key_Backtab, Qt.Key_Delete, Qt.Key_Backspace,
               Qt.Key_Escape, Qt.Key_Return, Qt.Key_Enter}


class WidgetKeys(QtCore.QObject):
    """Event filter: a focused input widget keeps its navigation and editing keys."""

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt API)
        if ev.type() == QtCore.QEvent.ShortcutOverride:
            key = ev.key()
            typing = isinstance(obj, QtWidgets.QLineEdit) and ev.text().isprintable() and ev.text() != ""
            if key in WIDGET_KEYS or typing:
                ev.accept()  # delivered to the widget as an ordinary key press
                return True
        return False


class MainWindow(QtWidgets.QMainWindow):
    """Main window. ``controller`` does the work; this class builds widgets and forwards events."""

    def __init__(self, atlas: Atlas, mode: str = "practice", index=None, parent=None, record: bool = True):
        super().__init__(parent)
        self.setWindowTitle("imssim - IMS dry needling trainer")
        self.resize(1280, 800)
        # no MSAA (FXAA instead): it halves the frame time on software OpenGL
        # the centre: the 3D view, and the Progress tab beside it
        self.central = QtWidgets.QTabWidget()
        self.central.setDocumentMode(True)
        self.view3d = QtInteractor(self.central, auto_update=False, multi_samples=0)
        self.view3d.set_background("#dfe6ec", top="#f7f9fb")
        self.view3d.enable_anti_aliasing("fxaa")
        self.central.addTab(self.view3d, "3D view")
        self.setCentralWidget(self.central)
        self.controller = Controller(atlas, self.view3d, index=index, mode=mode if mode != "author" else "practice",
                                     record=record)
        self.author = AuthorDesk(self.controller)  # Author mode: writing a case (app/authoring.py)
        self.handlers = {
            ev.NeedleChanged: self._on_needle,
            ev.Feedback: self._on_feedback,
            ev.Hover: lambda e: self.hover_label.setText(e.text or ""),
            ev.ModeChanged: self._on_mode_event,
            ev.NeedleSpecChanged: self._on_needle_spec,
            ev.ToolChanged: self._on_tool,
            ev.Danger: lambda e: self.tabs.setCurrentIndex(1),
            ev.CaseOpened: lambda e: self._on_scenario(e.scenario),
            ev.AttemptStarted: self._on_attempt,
            ev.SegmentsChanged: lambda e: self.segments_label.setText("Marked: " + (", ".join(e.segments) or "none")),
            ev.QuizChanged: lambda e: self.quiz_panel.refresh(),
            ev.Twitch: lambda e: self._animate(e.structure, e.needle, "twitch", e.amplitude, e.duration),
            ev.Release: self._on_release,
            ev.Finished: self._on_finished,
            ev.TraineeChanged: self._on_trainee,
            ev.ProgressSaved: self._on_progress_saved,
            ev.ProgressNotSaved: self._on_progress_not_saved,
            ev.CourseContinued: self._on_course,
            ev.AuthoringChanged: self._on_authoring,
            ev.AuthorModeChanged: lambda e: self._author_mode(e.on),
        }
        # many moves within one event-loop turn (wheel bursts) cost one frame, and a frame
        # where only needles moved reuses the scene's last picture (render/backdrop.py)
        self.backdrop = SceneBackdrop(self.view3d)
        # simplified meshes while the view moves (render/lod.py)
        self.lod = InteractionLOD(self.view3d, self.controller.scene, schedule=QtCore.QTimer.singleShot)
        self._render_pending = False
        self._last_release_due = 0.0
        self.controller.render = self._schedule_render
        self.controller.listeners.append(self._on_core_event)
        # finished attempts go to the progress store (after the window has shown the report);
        # a picture (--screenshot) is not an attempt: nothing is saved then
        self.progress = ProgressDesk(self.controller, enabled=record)
        self._leaving: str | None = None  # what the trainee is doing that ends a running exam
        self._docks_hidden: list = []
        self._press = None
        self._aiming = False
        self._hover_pos = None
        self._hover_timer = QtCore.QTimer(self, singleShot=True, interval=HOVER_DELAY_MS)
        self._hover_timer.timeout.connect(self._do_hover)
        self._clock_timer = QtCore.QTimer(self, interval=1000)
        self._clock_timer.timeout.connect(self._tick)
        self.actions: dict[str, QtGui.QAction] = {}
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_explore_dock()
        self._build_needle_dock()
        self._build_slice_dock()
        self._build_author_dock()
        from .progress_view import ProgressView

        self.progress_view = ProgressView(self)
        self.central.addTab(self.progress_view, "Progress")
        self.central.setTabToolTip(1, "Your saved sessions over time, and your course  [Ctrl+Shift+P]")
        self.central.currentChanged.connect(self._central_changed)
        self.status = self.statusBar()
        self.hover_label = QtWidgets.QLabel("")
        self.status.addPermanentWidget(self.hover_label)
        self.view3d.interactor.installEventFilter(self)
        self.view3d.interactor.setMouseTracking(True)
        self.resizeDocks([self.explore_dock, self.needle_dock], [300, 330], Qt.Horizontal)
        self._widget_keys = WidgetKeys(self)
        for cls in (QtWidgets.QAbstractItemView, QtWidgets.QLineEdit, QtWidgets.QComboBox,
                    QtWidgets.QAbstractSpinBox, QtWidgets.QTextEdit):
            for wdg in self.findChildren(cls):
                wdg.installEventFilter(self._widget_keys)
        self._on_mode(self.controller.mode)
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
        sl = QtGui.QAction("Slice view along the needle", self, shortcut=QtGui.QKeySequence("V"), checkable=True)
        sl.setShortcutContext(Qt.WindowShortcut)
        sl.setToolTip("Show or hide a cross-section in the plane of the needle  [V]")
        sl.toggled.connect(self.show_slice)
        self.addAction(sl)
        self.actions["V"] = sl

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.open_action = f.addAction("Open scenario...", self.choose_scenario)
        self.open_action.setShortcut(QtGui.QKeySequence("Ctrl+O"))
        self.open_action.setToolTip("Choose a case from the library or a file  [Ctrl+O]")
        self.recent_menu = f.addMenu("Recent scenarios")
        self._fill_recent()
        self.new_action = f.addAction("New attempt at this case", self.new_attempt)
        self.new_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+N"))
        self.continue_action = f.addAction("Continue course", self.continue_course)
        self.continue_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+C"))
        self.continue_action.setToolTip("Open the next session of your course: the patient as your earlier "
                                        "sessions left them  [Ctrl+Shift+C]")
        self.trainee_action = f.addAction(f"Trainee: {self.progress.trainee}..." if self.progress.trainee
                                          else "Trainee...", self.ask_trainee)
        self.trainee_action.setToolTip("Say who you are: finished attempts are saved to your progress under it")
        self.resume_action = f.addAction("Resume an interrupted session...", self._ask_resume)
        self.export_action = f.addAction("Export report and recording...", self._ask_export)
        self.export_action.setEnabled(False)
        f.addAction(self.actions["shot"])
        f.addSeparator()
        q = f.addAction("Quit", self.close)
        q.setShortcut(QtGui.QKeySequence("Ctrl+Q"))
        v = mb.addMenu("&View")
        for p in PRESETS.values():
            v.addAction(self.actions[p.key])
        v.addSeparator()
        v.addAction(self.actions["V"])
        self.progress_action = v.addAction("Progress", lambda: self.show_progress(
            self.central.currentWidget() is not self.progress_view))
        self.progress_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+P"))
        n = mb.addMenu("&Needle")
        for k in ("N", "P", "Esc", "Up", "Down", "Shift+Up", "Shift+Down", "A", "D", "W", "S", "R", "T", "Tab",
                  "Delete"):
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
        self.mode_combo.addItems(["practice", "quiz", "exam", "author"])
        self.mode_combo.setToolTip("Practice: names and hints shown. Quiz: questions, no names. "
                                   "Exam: no names or hints, timed, graded at the end. "
                                   "Author: write a case (an instructor's mode).")
        self.mode_combo.currentTextChanged.connect(self.set_mode)
        tb.addWidget(self.mode_combo)
        tb.addSeparator()
        self.tool_group = QtGui.QActionGroup(self)
        for tool, key, text in (("look", "Esc", "Look"), ("needle", "N", "Needle"), ("palpate", "P", "Palpate")):
            a = QtGui.QAction(text, self, checkable=True)
            a.setToolTip(self.actions[key].toolTip())
            a.triggered.connect(lambda checked=False, t=tool: self.controller.set_tool(t))
            self.tool_group.addAction(a)
            tb.addAction(a)
            setattr(self, f"tool_{tool}", a)
        self.tool_point = QtGui.QAction("Point", self, checkable=True)
        self.tool_point.setToolTip("Author mode: click the body to place a tender point")
        self.tool_point.triggered.connect(lambda checked=False: self.controller.set_tool("point"))
        self.tool_group.addAction(self.tool_point)
        self.tool_point_action = tb.addAction(self.tool_point)
        self.tool_point.setVisible(False)
        self.tool_look.setChecked(True)
        tb.addSeparator()
        tb.addWidget(QtWidgets.QLabel(" Needle: "))
        self.length_combo = QtWidgets.QComboBox()
        from ..core.engines.needle import PRESET_LENGTHS_MM

        for L in PRESET_LENGTHS_MM:
            self.length_combo.addItem(f"{L} mm x 0.25 mm", L)
        self.length_combo.setCurrentIndex(list(PRESET_LENGTHS_MM).index(50))
        self.length_combo.setToolTip("Length of the next needle you insert")
        self.length_combo.currentIndexChanged.connect(
            lambda i: self.controller.set_needle_length(self.length_combo.itemData(i)))
        tb.addWidget(self.length_combo)
        tb.addSeparator()
        self.finish_button = QtWidgets.QPushButton("Finish and score")
        self.finish_button.setShortcut(QtGui.QKeySequence("Ctrl+Return"))
        self.finish_button.setToolTip("End the attempt and see the score  [Ctrl+Return]")
        self.finish_button.clicked.connect(self.finish)
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
        self.targets_check = QtWidgets.QCheckBox("Show the case's targets (practice)")
        self.targets_check.setEnabled(False)
        self.targets_check.setToolTip("Colour the muscles this case should be needled in (green)")
        self.targets_check.toggled.connect(self.controller.show_targets)
        gl.addWidget(self.targets_check, r + 1, 0, 1, 2)
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
        for s in sorted(self.atlas, key=lambda s: (s.kind, natural_key(s.name))):
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
        # keyboard: Up/Down walk the list (highlighting as they go), Enter looks at it
        self.structure_list.selectionModel().currentChanged.connect(
            lambda ix, _prev: ix.isValid() and self.structure_list.hasFocus() and self._list_select(ix, False))
        self.structure_list.activated.connect(lambda ix: self._list_select(ix, True))
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
        cl.addWidget(self.brief)
        seg = QtWidgets.QHBoxLayout()
        seg.addWidget(QtWidgets.QLabel("Involved segment:"))
        from ..core.model.atlas import SEGMENTS

        self.segment_combo = QtWidgets.QComboBox()
        self.segment_combo.addItems(list(SEGMENTS))
        self.segment_combo.setEditable(True)  # type "L5" (completed as you type) or pick from a short list
        self.segment_combo.setInsertPolicy(QtWidgets.QComboBox.NoInsert)
        self.segment_combo.setMaxVisibleItems(10)  # the pop-up fits an 800-px window
        self.segment_combo.completer().setCaseSensitivity(Qt.CaseInsensitive)
        self.segment_combo.completer().setCompletionMode(QtWidgets.QCompleter.PopupCompletion)
        self.segment_combo.lineEdit().setPlaceholderText("e.g. L5")
        self.segment_combo.setCurrentIndex(-1)  # no default: it would be a hint
        self.segment_combo.setEditText("")
        self.segment_combo.setToolTip("Mark the spinal segment you think is involved (part of the score)")
        self.segment_combo.lineEdit().returnPressed.connect(self._mark_typed)
        seg.addWidget(self.segment_combo)
        self.mark_button = QtWidgets.QPushButton("Mark")
        self.mark_button.clicked.connect(self._mark_typed)
        self.mark_button.setEnabled(False)
        seg.addWidget(self.mark_button)
        cl.addLayout(seg)
        self.segments_label = QtWidgets.QLabel("Marked: none")
        cl.addWidget(self.segments_label)
        self.scenario_button = QtWidgets.QPushButton("Choose a scenario...  [Ctrl+O]")
        self.scenario_button.clicked.connect(self.choose_scenario)
        cl.addWidget(self.scenario_button)
        self.course_button = QtWidgets.QPushButton("Continue course  [Ctrl+Shift+C]")
        self.course_button.setToolTip(self.continue_action.toolTip())
        self.course_button.clicked.connect(self.continue_course)
        cl.addWidget(self.course_button)
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
        feel = QtWidgets.QWidget()
        fl = QtWidgets.QHBoxLayout(feel)
        fl.setContentsMargins(0, 0, 0, 0)
        self.r_resist = QtWidgets.QProgressBar()
        self.r_resist.setRange(0, 100)
        self.r_resist.setTextVisible(False)
        self.r_resist.setFixedWidth(70)
        self.r_resist.setMaximumHeight(12)
        self.r_resist.setToolTip("Resistance at the needle tip: a supersensitive muscle grasps the needle; "
                                 "the grip eases as the muscle releases")
        self.r_feel = QtWidgets.QLabel()
        self.r_feel.setWordWrap(True)
        fl.addWidget(self.r_resist)
        fl.addWidget(self.r_feel, 1)
        form.addRow("Needle:", self.r_needle)
        form.addRow("Depth:", self.r_depth)
        form.addRow("Angle:", self.r_angles)
        form.addRow("Tip in:", self.r_tip)
        form.addRow("Feel:", feel)
        form.addRow("Passed:", self.r_layers)
        form.addRow("Danger:", self.r_clear)
        nl.addLayout(form)
        nl.addWidget(QtWidgets.QLabel("<b>Feedback</b>"))
        self.feedback_view = QtWidgets.QTextBrowser()
        nl.addWidget(self.feedback_view, 1)
        self.tabs.addTab(nd, "Needle")
        self.quiz_panel = QuizPanel(self)
        self.tabs.addTab(self.quiz_panel, "Quiz")
        self.tabs.setTabEnabled(2, False)
        self.tabs.setCurrentIndex(1)
        dock.setWidget(self.tabs)
        dock.setMinimumWidth(300)
        dock.setMaximumWidth(340)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        self.needle_dock = dock

    def _build_slice_dock(self) -> None:
        """The slice view: hidden until asked for (V), below the case and needle panel."""
        from .slice_view import SliceView

        dock = QtWidgets.QDockWidget("Slice along the needle", self)
        dock.setObjectName("slice")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable | QtWidgets.QDockWidget.DockWidgetClosable)
        w = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(w)
        lay.setContentsMargins(2, 2, 2, 2)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Plane:"))
        self.slice_plane = QtWidgets.QComboBox()
        self.slice_plane.addItem("sagittal (needle + head-to-foot)", "sagittal")
        self.slice_plane.addItem("transverse (needle + left-right)", "transverse")
        self.slice_plane.setToolTip("Which plane through the needle to cut the body with")
        self.slice_plane.currentIndexChanged.connect(
            lambda i: (self.slice_view.set_plane(self.slice_plane.itemData(i)), self._refresh_slice()))
        row.addWidget(self.slice_plane, 1)
        lay.addLayout(row)
        self.slice_view = SliceView()
        lay.addWidget(self.slice_view, 1)
        dock.setWidget(w)
        dock.setMinimumWidth(300)
        dock.setMaximumWidth(340)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        self.splitDockWidget(self.needle_dock, dock, Qt.Vertical)
        self.slice_dock = dock
        dock.hide()
        dock.visibilityChanged.connect(self._slice_visibility)

    def show_slice(self, on: bool = True) -> None:
        """Show or hide the slice view (V); showing it redraws it (``_slice_visibility``)."""
        self.slice_dock.setVisible(on)

    def _slice_visibility(self, visible: bool) -> None:
        a = self.actions["V"]  # also when closed with the dock's own button: the tick follows the dock
        a.blockSignals(True)
        a.setChecked(not self.slice_dock.isHidden())
        a.blockSignals(False)
        if visible:
            self._refresh_slice()

    def _refresh_slice(self, readout: dict | None = None) -> None:
        """Recut (cached: only when entry, direction or plane change) and redraw the slice;
        ``readout`` is the controller's, when the caller already has it."""
        if self.slice_dock.isHidden():
            return
        n = self.controller.current
        r = readout if readout is not None else self.controller.readout()
        self.slice_view.update_needle(self.atlas, n, depth=0.0 if n is None else n.depth,
                                      tip_label="" if r is None else r["tip"])

    # -- widget -> controller -------------------------------------------------------------
    def _mark_typed(self) -> None:
        text = self.segment_combo.currentText().strip()
        if text:  # nothing typed or chosen: nothing marked (no default segment: it would be a hint)
            self.controller.mark_segment(text)

    def new_attempt(self) -> None:
        if self.confirm_leave_exam("start a new attempt"):
            with self._leaving_as("start a new attempt"):
                self.controller.new_attempt()

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

    @property
    def atlas(self) -> Atlas:
        return self.controller.atlas  # the case holds it (the patient's body build)

    def set_mode(self, mode: str) -> None:
        if self.mode_combo.currentText() != mode:
            self.mode_combo.setCurrentText(mode)  # re-enters through the signal
            return
        if mode != "exam" and not self.confirm_leave_exam(f"switch to {mode} mode"):
            self.mode_combo.blockSignals(True)  # cancelled: the exam goes on as it was
            self.mode_combo.setCurrentText(self.controller.mode)
            self.mode_combo.blockSignals(False)
            return
        if mode == "author":
            with self._leaving_as("write a case"):
                self.author.enter()
            return
        if self.author.active:
            # leaving Author mode: the case as it stands, as a student sees it (preview)
            self.author_panel.commit_form()
            if self.author.authoring is not None:
                if self.author.preview(mode):
                    return
                self.mode_combo.blockSignals(True)
                self.mode_combo.setCurrentText("author")
                self.mode_combo.blockSignals(False)
                return
            self.author.leave()
        self.controller.set_mode(mode)

    # -- leaving an exam ---------------------------------------------------------------------
    def confirm_leave_exam(self, what: str) -> bool:
        """In a running exam, ask before ``what`` (switching mode, another case or attempt,
        closing): leaving ends the exam, scored as it stands. True: go ahead (no exam, or yes)."""
        if not self.controller.exam_running:
            return True
        B = QtWidgets.QMessageBox
        answer = B.question(self, "Leave the exam?",
                            f"To {what} you leave the exam: it ends now and is scored as it stands "
                            "(the recording and your progress keep it).\n\nLeave the exam?", B.Yes | B.No, B.No)
        return answer == B.Yes

    class _Leaving:
        def __init__(self, win, what):
            self.win, self.what = win, what

        def __enter__(self):
            self.win._leaving = self.what if self.win.controller.exam_running else None

        def __exit__(self, *exc):
            what, self.win._leaving = self.win._leaving, None
            r = getattr(self.win, "_exam_report", None)
            if what is not None and r is not None and self.win.controller.report is not r:
                self.win.status.showMessage(f"The exam ended when you chose to {what}: {r.summary} "
                                            "(see the Progress tab).", 15000)

    def _leaving_as(self, what: str) -> "_Leaving":
        """Around an action that may end a running exam: its report is not shown over the new
        case; the status bar says how it ended."""
        return MainWindow._Leaving(self, what)

    # -- controller -> widgets --------------------------------------------------------------
    def _on_core_event(self, event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _on_needle(self, e: ev.NeedleChanged) -> None:
        self._refresh_readout(e.readout)
        self._refresh_slice(e.readout)

    def _on_feedback(self, e: ev.Feedback) -> None:
        style = LEVEL_STYLE.get(e.level, "")
        self.feedback_view.append(f'<span style="{style}">{html.escape(e.text)}</span>')
        self.status.showMessage(e.text, 8000)

    def _on_mode_event(self, e: ev.ModeChanged) -> None:
        if self.author.active:
            return  # Author mode: the (empty) attempt underneath has no mode to show
        if self.mode_combo.currentText() != e.mode:
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentText(e.mode)
            self.mode_combo.blockSignals(False)
        self._on_mode(e.mode)

    def _on_needle_spec(self, e: ev.NeedleSpecChanged) -> None:
        i = self.length_combo.findData(int(round(e.length)))
        if i >= 0 and i != self.length_combo.currentIndex():
            self.length_combo.blockSignals(True)
            self.length_combo.setCurrentIndex(i)
            self.length_combo.blockSignals(False)

    # -- Author mode -------------------------------------------------------------------------------
    def _build_author_dock(self) -> None:
        from .author_view import AuthorPanel

        dock = QtWidgets.QDockWidget("Author", self)
        dock.setObjectName("author")
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetMovable)
        self.author_panel = AuthorPanel(self, self.author)
        dock.setWidget(self.author_panel)
        dock.setMinimumWidth(380)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        dock.hide()
        self.author_dock = dock
        m = self.menuBar().addMenu("&Author")
        for key, text, fn in (("Ctrl+Z", "Undo the last edit of the case", self.author_undo),
                              ("Ctrl+Shift+Z", "Redo", self.author_redo),
                              ("Ctrl+S", "Save the case", lambda: self.author_save())):
            a = QtGui.QAction(text, self, shortcut=QtGui.QKeySequence(key))
            a.setShortcutContext(Qt.WindowShortcut)
            a.triggered.connect(lambda checked=False, fn=fn: fn())
            a.setEnabled(False)
            m.addAction(a)
            self.addAction(a)
            self.actions[key] = a
        m.addAction("Write a case (Author mode)", lambda: self.set_mode("author"))

    def _author_mode(self, on: bool) -> None:
        """Show the Author panel instead of the case and needle panel (and back)."""
        self.author_dock.setVisible(on)
        self.needle_dock.setVisible(not on)
        if on:
            self.slice_dock.hide()
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentText("author")
            self.mode_combo.blockSignals(False)
        self.tool_point.setVisible(on)
        for w in (self.finish_button, self.length_combo):
            w.setEnabled(not on)
        for k in ("Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+S"):
            self.actions[k].setEnabled(on)
        self._on_authoring(None)

    def _on_authoring(self, e) -> None:
        self.author_panel.refresh()
        a = self.author.authoring
        if self.author.active:
            t = "no case" if a is None else a.scenario.title + (" *" if a.dirty else "")
            self.setWindowTitle(f"imssim - Author: {t}")

    def confirm_discard(self, what: str) -> bool:
        """Unsaved changes to the case being written: ask before ``what``. True: go ahead
        (saved, discarded, or nothing unsaved)."""
        self.author_panel.commit_form()
        if not self.author.dirty:
            return True
        B = QtWidgets.QMessageBox
        answer = B.question(self, "Unsaved changes",
                            f"The case '{self.author.scenario.title}' has unsaved changes. Save them before you "
                            f"{what}?", B.Save | B.Discard | B.Cancel, B.Save)
        if answer in (B.Save, B.Yes):
            return self.author_save() is not None
        return answer in (B.Discard, B.No)

    def author_new(self, segments: str | None = None, side: str | None = None, condition: str | None = None) -> bool:
        """A new case from the template; without arguments a small dialog asks for them."""
        if segments is None:
            d = NewCaseDialog(self)
            if d.exec() != QtWidgets.QDialog.Accepted:
                return False
            segments, side, condition = d.values()
        if not self.confirm_discard("start a new case"):
            return False
        ok = self.author.new(segments, side or "right", condition or "chronic low back pain")
        if ok and not self.author.active:
            self.set_mode("author")
        return ok

    def author_open(self, path: str | None = None) -> bool:
        if path is None:
            from ..core.training.scenario import library_dir

            path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a case to edit", str(library_dir()),
                                                            "Scenarios (*.yaml *.yml)")
            if not path:
                return False
        if not self.confirm_discard("open another case"):
            return False
        ok = self.author.open(path)
        if ok and not self.author.active:
            self.set_mode("author")
        return ok

    def author_save(self, path: str | None = None, ask: bool = False):
        """Save (Save as when ``ask`` or when the case has no file yet). The file replaced is
        kept as NAME.bak. Returns the path, or None when not saved."""
        a = self.author.authoring
        if a is None:
            return None
        self.author_panel.commit_form()
        if path is None and (ask or a.path is None):
            start = str(a.path) if a.path is not None else f"{a.scenario.id}.yaml"
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save the case", start, "Scenarios (*.yaml)")
            if not path:
                return None
        return self.author.save(path)

    def author_undo(self) -> None:
        self.author_panel.commit_form()
        self.author.undo()

    def author_redo(self) -> None:
        self.author.redo()

    def _on_tool(self, e: ev.ToolChanged) -> None:
        getattr(self, f"tool_{e.tool}").setChecked(True)
        self.view3d.interactor.setCursor(Qt.CrossCursor if e.tool != "look" else Qt.ArrowCursor)

    def _on_release(self, e: ev.Release) -> None:
        # said in the order the twitches came (a weaker, later twitch settles sooner)
        now = time.monotonic()
        due = max(now + e.delay + 0.05, self._last_release_due + 0.05)
        self._last_release_due = due
        QtCore.QTimer.singleShot(int(1000 * (due - now)), lambda e=e: self._release(e))

    def _on_attempt(self, e: ev.AttemptStarted) -> None:
        """A fresh attempt: nothing of the previous one stays on screen."""
        self.central.setCurrentWidget(self.view3d)
        self.feedback_view.clear()
        d = getattr(self, "report_dialog", None)
        if d is not None:
            d.close()
            self.report_dialog = None
        self.export_action.setEnabled(False)
        self.segments_label.setText("Marked: " + (", ".join(self.controller.marked_segments) or "none"))
        self.segment_combo.setCurrentIndex(-1)
        self.segment_combo.setEditText("")
        self.quiz_panel.refresh()
        self._refresh_slice()

    def _on_finished(self, e: ev.Finished) -> None:
        self._clock_timer.stop()
        self.export_action.setEnabled(True)
        self.quiz_panel.refresh()
        self._exam_report = e.report
        if self._leaving is None:  # leaving the exam for another case: the status bar says it
            self.show_report(e.report)

    # -- progress and the course ------------------------------------------------------------------
    def show_progress(self, on: bool = True) -> None:
        """Show the Progress tab (or the 3D view again)."""
        self.central.setCurrentWidget(self.progress_view if on else self.view3d)

    def _central_changed(self, i: int) -> None:
        # the Progress tab takes the whole window: the panels of the 3D view step aside
        if self.central.widget(i) is self.progress_view:
            self._docks_hidden = [d for d in (self.explore_dock, self.needle_dock, self.slice_dock) if d.isVisible()]
            for d in self._docks_hidden:
                d.hide()
        else:
            for d in self._docks_hidden:
                d.show()
            self._docks_hidden = []

    def ask_trainee(self) -> bool:
        """Ask who the trainee is (the name their attempts are saved under)."""
        name, ok = QtWidgets.QInputDialog.getText(
            self, "Who are you?", "Your name or trainee id (your finished attempts are saved under it):",
            text=self.progress.trainee or "")
        if not ok or not name.strip():
            return False
        self.progress.set_trainee(name)
        return True

    def continue_course(self) -> bool:
        """Open the next session of the trainee's course (File > Continue course)."""
        from ..core.training.course import CourseError
        from ..core.training.progress import ProgressError
        from ..core.training.scenario import ScenarioError

        if not self.confirm_leave_exam("continue your course"):
            return False
        if self.progress.trainee is None and not self.ask_trainee():
            return False
        try:
            with self._leaving_as("continue your course"):
                self.progress.continue_course()
        except (CourseError, ProgressError, ScenarioError) as e:
            self._warn("Cannot continue the course", "The course was not opened; your current work is unchanged.",
                       str(e))
            return False
        return True

    def save_waiting(self) -> int:
        """Save the attempts that wait (the database was down, or no name was given)."""
        from ..core.training.progress import ProgressError

        if self.progress.kept and self.progress.trainee is None and not self.ask_trainee():
            return 0
        try:
            n = self.progress.retry()
        except ProgressError as e:
            self._warn("Progress not saved yet", "The waiting attempts are still kept; try again later.", str(e))
            self.progress_view.refresh()
            return 0
        if not n:
            self.status.showMessage("Nothing was waiting to be saved.", 8000)
        self.progress_view.refresh()
        return n

    def _warn(self, title: str, text: str, detail: str) -> None:
        """A window-modal, non-blocking warning (the work stays as it is); also ``last_error``."""
        self.last_error = detail
        self.status.showMessage(detail.splitlines()[0], 15000)
        if self.isVisible() and not getattr(self, "_closing", False):
            box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, title, text, QtWidgets.QMessageBox.Ok, self)
            box.setInformativeText(detail.splitlines()[0])
            box.setDetailedText(detail)
            box.open()
            self.error_box = box

    def _progress_changed(self) -> None:
        self.progress_view.dirty = True
        if self.central.currentWidget() is self.progress_view:
            self.progress_view.refresh()

    def _on_trainee(self, e: ev.TraineeChanged) -> None:
        self.trainee_action.setText(f"Trainee: {e.name}..." if e.name else "Trainee...")
        self._progress_changed()

    def _report_note(self, text: str, ok: bool) -> None:
        d = getattr(self, "report_dialog", None)
        if d is not None:
            d.set_note(text, ok, ask_name=self.progress.trainee is None)

    def _on_progress_saved(self, e: ev.ProgressSaved) -> None:
        if e.count == 1:
            text = f"Saved to {e.trainee}'s progress ({e.db})."
            if e.course_session:
                text += f" Course session {e.course_session} is done; next time: session {e.next_session}."
        else:
            text = f"Saved {e.count} waiting attempt(s) to the progress database {e.db}."
        self.status.showMessage(text, 10000)
        self._report_note(text, True)
        self._progress_changed()

    def _on_progress_not_saved(self, e: ev.ProgressNotSaved) -> None:
        self.status.showMessage(e.text.splitlines()[0], 15000)
        self._report_note(e.text, False)
        self._progress_changed()
        if e.kept == "pending":
            self._warn("Progress not saved: database unreachable",
                       f"The progress database {e.db} cannot be reached. Your attempt is not lost: it is kept on "
                       "this computer and saved when the database can be reached again (Progress tab: "
                       "Save waiting sessions, or the next time imssim opens it).", e.text)

    def _on_course(self, e: ev.CourseContinued) -> None:
        self.brief.setHtml(self.brief_html())
        self.tabs.setCurrentIndex(0)
        ps = self.controller.patient_state
        self.status.showMessage(f"Course session {e.session} of {e.sessions}"
                                + (" (from this window: the database cannot be reached)" if e.offline else "")
                                + (f": pain {ps.pain}/10 (at the first session {ps.pain0}/10)." if ps else "."),
                                15000)

    # -- scenarios --------------------------------------------------------------------------
    def open_scenario(self, name, mode: str | None = None) -> bool:
        """Load a scenario by library id or path; a bad file is reported, nothing is lost.
        In a running exam, asks first (opening another case ends the exam, scored)."""
        from ..core.training.scenario import ScenarioError

        if not self.confirm_leave_exam("open another case"):
            return False
        try:
            with self._leaving_as("open another case"):
                sc = self.controller.load_scenario(name, mode=mode)
        except ScenarioError as e:
            self.last_error = str(e)
            if self.isVisible():  # window-modal, not blocking: the session stays as it was
                box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Warning, "Cannot open this scenario",
                                            "The case was not opened; your current work is unchanged.",
                                            QtWidgets.QMessageBox.Ok, self)
                box.setDetailedText(str(e))
                box.setInformativeText(str(e).splitlines()[0])
                box.open()
                self.error_box = box
            return False
        if sc.path is not None:
            self._remember(str(sc.path))
        return True

    def _settings(self) -> QtCore.QSettings:
        return QtCore.QSettings("imssim", "imssim")

    def recent_files(self) -> list[str]:
        v = self._settings().value("recent_scenarios", [])
        return [v] if isinstance(v, str) else list(v or [])

    def _remember(self, path: str) -> None:
        r = [path] + [p for p in self.recent_files() if p != path]
        self._settings().setValue("recent_scenarios", r[:8])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            self.recent_menu.addAction(p, lambda p=p: self.open_scenario(p))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def choose_scenario(self) -> "ScenarioChooser":
        d = ScenarioChooser(self)
        d.show()
        self.chooser = d
        return d

    def _on_scenario(self, sc) -> None:
        self.setWindowTitle(f"imssim - {sc.title}")
        self.mark_button.setEnabled(True)
        self.tabs.setTabEnabled(2, bool(sc.quiz))
        self.tabs.setCurrentIndex(0)

    def brief_html(self) -> str:
        sc = self.controller.scenario
        if sc is None:
            return ("<h3>No case loaded</h3><p>Choose a case (<b>Ctrl+O</b>) or explore the anatomy and practise "
                    "needle placement: press <b>N</b> and click the skin.</p>")
        e = html.escape
        pt = sc.patient
        out = [f"<h3>{e(sc.title)}</h3>",
               f"<p style='color:#556'>{e(sc.difficulty)} &middot; about {sc.estimated_minutes} min</p>",
               *self._course_html(),
               f"<p><b>Patient:</b> {pt.age}-year-old {e(pt.sex)}, {e(pt.habitus)} build.</p>",
               f"<p><b>Complaint:</b> {e(pt.presenting_complaint)}</p>",
               f"<p><b>History:</b> {e(pt.history)}</p>"]
        if pt.pain:
            areas = ", ".join(f"{e(a.region)} ({e(a.side)})" for a in pt.pain)
            out.append(f"<p><b>Pain:</b> {areas}</p>")
        exam = [f for f in pt.findings if f.kind not in ("tender_point", "taut_band")]
        palp = [f for f in pt.findings if f.kind in ("tender_point", "taut_band")]
        if exam or palp:
            out.append("<p><b>Examination:</b></p><ul>")
            out += [f"<li>{e(f.description)}</li>" for f in exam]
            if palp:
                out.append("<li><i>Palpate</i> (<b>P</b>, then click the skin) to find tender points and taut "
                           "bands.</li>")
            out.append("</ul>")
        if self.controller.hints_visible and sc.learning_objectives:
            out.append("<p><b>Objectives:</b></p><ul>" + "".join(f"<li>{e(o)}</li>" for o in sc.learning_objectives)
                       + "</ul>")
        settings = self.controller.settings
        if settings.timer_s:
            out.append(f"<p><b>Exam:</b> {settings.timer_s / 60:.0f} minutes, no names or hints.</p>")
        return "".join(out)

    def _course_html(self) -> list[str]:
        """The brief of a course session: where the course stands and what changed (muscle
        names only where names are shown)."""
        c = self.controller
        ps, sc = c.patient_state, c.scenario
        if ps is None or sc is None or sc.course is None:
            return []
        e = html.escape
        out = [f"<p style='color:#1d5fa8'><b>Course: session {ps.session} of {sc.course.sessions}.</b> "
               f"Pain {ps.pain}/10 today (at the first session {ps.pain0}/10).</p><ul style='color:#1d5fa8'>"]
        if c.labels_visible:
            lines = ps.findings(self.atlas)[1:] + ps.changes_since_last(self.atlas)
            if ps.session > 1:
                lines += ps.muscles(self.atlas)
        else:  # quiz and exam: no names
            lines = [f"Range of motion {ps.rom_percent:.0f}% of normal.",
                     f"{len(ps.tender)} muscle(s) tender with a taut band."]
        out += [f"<li>{e(x)}</li>" for x in lines]
        out.append("</ul>")
        return out

    def _on_mode(self, mode: str) -> None:
        c = self.controller
        names = c.labels_visible
        self.structure_list.setEnabled(names)
        self.filter_edit.setEnabled(names)
        self.filter_edit.setVisible(names)
        self.structure_list.setVisible(names)
        self.structure_hidden_label.setVisible(not names)
        self.hover_label.setText("")
        self.brief.setHtml(self.brief_html())
        self.targets_check.setEnabled(bool(c.targets) and bool(c.settings.targets_shown))
        if not self.targets_check.isEnabled():
            self.targets_check.setChecked(False)
        if mode == "quiz" and c.quiz and hasattr(self, "quiz_panel"):
            self.tabs.setCurrentIndex(2)
            self.quiz_panel.show_question(self.quiz_panel.index)
        if mode == "exam" and not c.finished:
            self._clock_timer.start()
            self._tick()
        else:
            self._clock_timer.stop()
            self.timer_label.setText("EXAM  ended" if mode == "exam" else "")
        self._refresh_readout(self.controller.readout())

    def _tick(self) -> None:
        c = self.controller
        if c.mode != "exam" or c.finished:
            return
        s = int(c.session.now())  # the session's clock: the time the report gives
        limit = c.settings.timer_s
        if limit:
            left = max(int(limit) - s, 0)
            self.timer_label.setText(f"EXAM  {left // 60:02d}:{left % 60:02d} left")
            if left == 0 and self.controller.report is None:
                self._clock_timer.stop()
                self.controller.say("Time is up: the exam is graded now.", "warn")
                self.finish()
        else:
            self.timer_label.setText(f"EXAM  {s // 60:02d}:{s % 60:02d}")

    def _refresh_readout(self, r: dict | None) -> None:
        if r is None:
            self.r_needle.setText("none - press N and click the skin")
            for w in (self.r_depth, self.r_angles, self.r_tip, self.r_layers, self.r_clear, self.r_feel):
                w.setText("-")
            self.r_resist.setValue(0)
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
        self.r_resist.setValue(int(round(100 * r["resistance"])))
        self.r_resist.setStyleSheet("QProgressBar::chunk { background: %s; }"
                                    % ("#c0392b" if r["grasped"] else "#7f8c8d"))
        self.r_feel.setText(r["feel"])
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

    # -- twitch and release -------------------------------------------------------------------
    def _animate(self, structure, needle, kind: str, amplitude: float = 0.5, duration: float = 0.3) -> None:
        """A brief contraction pulse of the muscle and a jolt of the needle (twitch), or the
        muscle easing out (release, 1.2 s). Timed by the clock, not by frames: a slow
        renderer shows fewer frames of the same pulse, never a slow-motion one."""
        import math

        if kind != "twitch":
            duration = RELEASE_S
        clock = QtCore.QElapsedTimer()
        timer = QtCore.QTimer(self, interval=15)
        self.anim_frames = 0

        def tick():
            if getattr(self, "_closed", False):
                timer.stop()
                return
            u = min(1.0, clock.elapsed() / 1000.0 / duration)
            if u >= 1.0 and self.anim_frames == 0 and kind == "twitch":
                # the first tick came after the whole pulse (a very slow or busy machine):
                # the peak is shown once, so the twitch is never invisible
                self.controller.pulse_frame(structure, 0.12 * max(amplitude, 0.3), needle, jolt_mm=2.5)
                self.anim_frames += 1
                return
            if u >= 1.0:
                timer.stop()
                self.controller.pulse_frame(structure, 0.0, needle, 0.0)
                return
            if kind == "twitch":
                a = math.sin(math.pi * u)
                self.controller.pulse_frame(structure, 0.12 * max(amplitude, 0.3) * a, needle, jolt_mm=2.5 * a)
            else:
                self.controller.pulse_frame(structure, -0.04 * (1 - u) * math.sin(math.pi * min(1.0, 2 * u + 0.5)))
            self.anim_frames += 1

        timer.timeout.connect(tick)
        clock.start()
        timer.start()
        self._anim = timer

    def _release(self, e: ev.Release) -> None:
        if getattr(self, "_closed", False):
            return  # a release timed after the window closed: its 3D view is gone
        self.controller.say(e.text, "good")
        self._animate(e.structure, e.needle, "release")

    # -- finishing ---------------------------------------------------------------------------
    def finish(self):
        return self.controller.finish()

    def show_report(self, report) -> "ReportDialog":
        d = ReportDialog(self, report)
        d.show()
        self.report_dialog = d
        return d

    def export(self, folder) -> list:
        """Write report.json, report.txt and the recording into ``folder``."""
        import json
        import shutil
        from pathlib import Path

        c = self.controller
        if c.report is None:
            return []
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = c.scenario.id if c.scenario is not None else "session"
        out = [folder / f"{stem}-report.json", folder / f"{stem}-report.txt"]
        k = 1
        while any(f.exists() for f in out):  # never overwrite an earlier attempt's report: number it
            k += 1
            out = [folder / f"{stem}-report-{k}.json", folder / f"{stem}-report-{k}.txt"]
        d = c.report.to_dict()
        d["missed_targets"] = [t.structure for t in c.missed_targets()]
        d["marked_segments"] = list(c.marked_segments)
        out[0].write_text(json.dumps(d, indent=2), encoding="utf-8")
        out[1].write_text(c.report.format_text() + "\n", encoding="utf-8")
        if c.recording_path is not None and c.recording_path.exists():
            dst = folder / c.recording_path.name
            if dst.resolve() != c.recording_path.resolve():
                if dst.exists():  # an earlier export of another recording of that name: keep it
                    dst = folder / f"{c.recording_path.stem}-{k}{c.recording_path.suffix}"
                shutil.copyfile(c.recording_path, dst)
            out.append(dst)
        return out

    def _ask_export(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the report and the recording to")
        if folder:
            files = self.export(folder)
            self.status.showMessage("Wrote " + ", ".join(str(f) for f in files), 10000)

    def _ask_resume(self) -> None:
        from ..core.training.recording import recordings_dir

        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Resume a session", str(recordings_dir()),
                                                        "Recordings (*.jsonl)")
        if path:
            self.resume(path)

    def resume(self, path) -> bool:
        from ..core.training.recording import RecordingError
        from ..core.training.scenario import ScenarioError
        from ..core.training.session import SessionError

        if not self.confirm_leave_exam("resume another session"):
            return False
        try:
            with self._leaving_as("resume another session"):
                self.controller.resume(path)
        except (RecordingError, ScenarioError, SessionError) as e:
            self.last_error = str(e)
            self.status.showMessage(f"Cannot resume: {e}", 15000)
            return False
        return True

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
                 ("V", "Slice view along the needle (show / hide)"),
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

    def _schedule_render(self) -> None:
        if not self._render_pending:
            self._render_pending = True
            QtCore.QTimer.singleShot(0, self._render_now)

    def _render_now(self) -> None:
        self._render_pending = False
        if not getattr(self, "_closed", False):
            # one frame, drawn by the widget's paint (pyvistaqt's paint always renders, so
            # rendering here as well would draw every frame twice)
            self.view3d.update()

    def save_screenshot(self, path: str) -> bool:
        """Grab the whole window, including the 3D view, to a PNG."""
        self._render_now()
        QtWidgets.QApplication.processEvents()
        return self.grab().save(str(path), "PNG")

    def showEvent(self, ev):  # noqa: N802
        super().showEvent(ev)
        if not getattr(self, "_shown", False):
            self._shown = True
            QtCore.QTimer.singleShot(0, self._initial_view)
            self.view3d.interactor.setFocus()  # single-key shortcuts work at once

    def _initial_view(self) -> None:
        if not getattr(self, "_closed", False):
            self.controller.frame_case()  # the case's region (posterior without a case)

    def closeEvent(self, ev):  # noqa: N802
        if not getattr(self, "_closed", False):
            if not self.confirm_leave_exam("close the window"):
                ev.ignore()  # the exam goes on
                return
            if not self.confirm_discard("close the window"):
                ev.ignore()  # the case stays open, unsaved
                return
            self._closing = True
            with self._leaving_as("close the window"):
                self.controller.end_exam("the window was closed")
            if self.progress.kept and self.progress.trainee is None:
                self.ask_trainee()  # else the attempts stay in their recordings only
        self.progress.close()
        self._closed = True
        anim = getattr(self, "_anim", None)
        if anim is not None:
            anim.stop()
        self.controller.session.close()
        self._clock_timer.stop()
        self._hover_timer.stop()
        self.view3d.close()
        super().closeEvent(ev)


class NewCaseDialog(QtWidgets.QDialog):
    """What a new case starts from: the diagnosis (the template prefills its muscles)."""

    def __init__(self, win: MainWindow):
        super().__init__(win)
        self.setWindowTitle("New case from the template")
        form = QtWidgets.QFormLayout(self)
        self.segments = QtWidgets.QLineEdit("L5")
        self.segments.setPlaceholderText("e.g. L5 or C5, C6")
        self.side = QtWidgets.QComboBox()
        self.side.addItems(["right", "left", "bilateral"])
        self.condition = QtWidgets.QLineEdit("chronic low back pain")
        form.addRow("Segment(s):", self.segments)
        form.addRow("Side:", self.side)
        form.addRow("Condition:", self.condition)
        bb = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def values(self) -> tuple[str, str, str]:
        return self.segments.text(), self.side.currentText(), self.condition.text()


class ScenarioChooser(QtWidgets.QDialog):
    """The scenario library (and any file) to choose a case from."""

    def __init__(self, win: MainWindow):
        super().__init__(win)
        from ..core.training.scenario import library, load_scenario

        self.win = win
        self.setWindowTitle("Choose a case")
        lay = QtWidgets.QVBoxLayout(self)
        self.list = QtWidgets.QListWidget()
        for p in library():
            try:
                sc = load_scenario(p)
                text = f"{sc.title}   [{sc.difficulty}]"
            except Exception as e:  # noqa: BLE001 - a broken library file is listed with its error
                text = f"{p.stem}  (cannot be read: {str(e).splitlines()[0]})"
            it = QtWidgets.QListWidgetItem(text)
            it.setData(Qt.UserRole, str(p))
            self.list.addItem(it)
        self.list.itemDoubleClicked.connect(lambda it: self._open(it.data(Qt.UserRole)))
        lay.addWidget(self.list)
        row = QtWidgets.QHBoxLayout()
        f = QtWidgets.QPushButton("Open a file...")
        f.clicked.connect(self._file)
        o = QtWidgets.QPushButton("Open")
        o.setDefault(True)
        o.clicked.connect(lambda: self.list.currentItem() and self._open(self.list.currentItem().data(Qt.UserRole)))
        row.addWidget(f)
        row.addStretch(1)
        row.addWidget(o)
        lay.addLayout(row)
        self.resize(560, 380)

    def _file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a scenario", "", "Scenarios (*.yaml *.yml)")
        if path:
            self._open(path)

    def _open(self, path: str) -> None:
        if self.win.open_scenario(path):
            self.accept()


class QuizPanel(QtWidgets.QWidget):
    """The scenario's quiz: one question at a time, answered by choice or by clicking the body."""

    def __init__(self, win: MainWindow):
        super().__init__(win)
        self.win = win
        self.index = 0
        lay = QtWidgets.QVBoxLayout(self)
        self.progress = QtWidgets.QLabel()
        self.question = QtWidgets.QLabel()
        self.question.setWordWrap(True)
        self.question.setStyleSheet("font-size:14px; font-weight:bold")
        lay.addWidget(self.progress)
        lay.addWidget(self.question)
        self.choice_box = QtWidgets.QWidget()
        self.choice_lay = QtWidgets.QVBoxLayout(self.choice_box)
        self.choice_lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.choice_box)
        self.pick_hint = QtWidgets.QLabel("Click the structure in the 3D view (Look tool).")
        self.pick_hint.setStyleSheet("color:#1d5fa8")
        lay.addWidget(self.pick_hint)
        self.answer_button = QtWidgets.QPushButton("Answer")
        self.answer_button.clicked.connect(self._answer)
        lay.addWidget(self.answer_button)
        self.result = QtWidgets.QLabel()
        self.result.setWordWrap(True)
        lay.addWidget(self.result)
        nav = QtWidgets.QHBoxLayout()
        self.prev_button = QtWidgets.QPushButton("< Previous")
        self.next_button = QtWidgets.QPushButton("Next >")
        self.prev_button.clicked.connect(lambda: self.show_question(self.index - 1))
        self.next_button.clicked.connect(lambda: self.show_question(self.index + 1))
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        lay.addLayout(nav)
        self.total = QtWidgets.QLabel()
        lay.addWidget(self.total)
        lay.addStretch(1)
        self.buttons: list[QtWidgets.QAbstractButton] = []

    def show_question(self, i: int) -> None:
        q = self.win.controller.quiz
        if not q:
            return
        self.index = max(0, min(i, len(q) - 1))
        self.win.controller.ask_quiz(self.index)

    def _answer(self) -> None:
        given = [k for k, b in enumerate(self.buttons) if b.isChecked()]
        if given:
            self.win.controller.answer_quiz(self.index, given)

    def refresh(self) -> None:
        c = self.win.controller
        items = c.quiz
        for b in self.buttons:
            self.choice_lay.removeWidget(b)
            b.setParent(None)
            b.deleteLater()
        self.buttons = []
        if not items:
            self.question.setText("This case has no quiz questions.")
            for w in (self.answer_button, self.pick_hint, self.prev_button, self.next_button):
                w.setVisible(False)
            self.progress.setText("")
            self.result.setText("")
            self.total.setText("")
            return
        self.index = min(self.index, len(items) - 1)
        q = items[self.index]
        self.progress.setText(f"Question {self.index + 1} of {len(items)}")
        self.question.setText(q.question)
        mc = q.type == "multiple_choice"
        multi = mc and len(q.answers) > 1
        for k, ch in enumerate(q.choices if mc else []):
            b = QtWidgets.QCheckBox(ch) if multi else QtWidgets.QRadioButton(ch)
            self.choice_lay.addWidget(b)
            self.buttons.append(b)
        self.answer_button.setVisible(mc)
        self.answer_button.setEnabled(not c.finished)
        self.pick_hint.setVisible(not mc)
        self.prev_button.setVisible(True)
        self.next_button.setVisible(True)
        self.prev_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(self.index < len(items) - 1)
        r = c.quiz_answers.get(self.index)
        if r is None:
            self.result.setText("")
        else:
            colour = "#1d7a35" if r["correct"] else "#b3151b"
            verdict = "Right." if r["correct"] else f"Not quite - you answered {html.escape(r['shown'])}."
            self.result.setText(f"<span style='color:{colour};font-weight:bold'>{verdict}</span> "
                                f"{html.escape(r['explanation'])}")
            if mc:
                for k in r["answer"]:
                    self.buttons[k].setChecked(True)
        right = sum(1 for a in c.quiz_answers.values() if a["correct"])
        self.total.setText(f"Answered {len(c.quiz_answers)} of {len(items)}, {right} right.")


class ReportDialog(QtWidgets.QDialog):
    """The score: the scoring engine's sentences, the families, and the missed targets."""

    def __init__(self, win: MainWindow, report):
        super().__init__(win)
        self.win = win
        self.setWindowTitle("Score report")
        lay = QtWidgets.QVBoxLayout(self)
        self.text = QtWidgets.QTextBrowser()
        self.text.setHtml(self.report_html(report))
        lay.addWidget(self.text)
        row = QtWidgets.QHBoxLayout()
        ex = QtWidgets.QPushButton("Export report and recording...")
        ex.clicked.connect(win._ask_export)
        row.addWidget(ex)
        row.addStretch(1)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.accept)
        row.addWidget(close)
        self.note = QtWidgets.QLabel()  # saved to the trainee's progress, or why not
        self.note.setWordWrap(True)
        self.note.hide()
        lay.addWidget(self.note)
        self.name_button = QtWidgets.QPushButton("Save to my progress...")
        self.name_button.clicked.connect(win.ask_trainee)
        self.name_button.hide()
        lay.addWidget(self.name_button)
        lay.addLayout(row)
        self.resize(500, 640)

    def set_note(self, text: str, ok: bool, ask_name: bool = False) -> None:
        self.note.setText(text)
        self.note.setStyleSheet("color:#1d7a35" if ok else "color:#a35a00; font-weight:bold")
        self.note.show()
        self.name_button.setVisible(ask_name and not ok)

    def report_html(self, r) -> str:
        e = html.escape
        c = self.win.controller
        colour = "#1d7a35" if r.passed else "#b3151b"
        out = [f"<h2 style='color:{colour}'>{e(r.summary)}</h2>"]
        if c.session.ended_by:
            out.append(f"<p style='color:#b3151b'><b>The attempt ended early:</b> {e(c.session.ended_by)}.</p>")
        if r.needles:
            out.append("<h4>Your needles</h4><ul>" + "".join(f"<li>{e(d['sentence'])}</li>" for d in r.needles)
                       + "</ul>")
        out.append("<h4>Score by area</h4><table cellpadding='3'>")
        for fam, v in r.families.items():
            w = r.weights.get(fam, 0.0)
            bar = "" if v is None else ("&#9608;" * int(round(10 * v)) + "&#9617;" * (10 - int(round(10 * v))))
            val = "-" if v is None else f"{100 * v:.0f}%"
            out.append(f"<tr><td>{e(fam.replace('_', ' '))}</td><td style='color:{colour}'>{bar}</td>"
                       f"<td align='right'><b>{val}</b></td><td style='color:#667'>weight {w:.2f}</td></tr>")
        out.append("</table><h4>Details</h4><ul>")
        out += [f"<li>{e(m.sentence)}</li>" for m in r.metrics if m.sentence]
        out.append("</ul>")
        missed = c.missed_targets()
        if missed:
            out.append("<h4 style='color:#c25a00'>Targets not reached (shown orange on the body)</h4><ul>"
                       + "".join(f"<li>{e(t.name)} ({e(t.kind)}, {e(', '.join(t.segments))})</li>" for t in missed)
                       + "</ul>")
        if r.segment_call:  # the session's comparison of the marked segments with the case's
            sc = r.segment_call
            out.append(f"<p style='color:{'#1d7a35' if sc['right'] else '#c25a00'}'>{e(sc['sentence'])}</p>")
        if r.quiz:
            out.append(f"<p>Quiz: {r.quiz['correct']} of {r.quiz['items']} right.</p>")
        if c.recording_path is not None:
            out.append(f"<p style='color:#667'>Recording: {e(str(c.recording_path))}</p>")
        return "".join(out)
