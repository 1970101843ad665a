"""Fast frames when only the needle moved (render/backdrop.py), with the off-screen renderer."""

from __future__ import annotations

import numpy as np
import pytest

pv = pytest.importorskip("pyvista", reason="pyvista renders the scene")

from imssim.core.model.atlas import Atlas, Landmark, Structure  # noqa: E402
from imssim.render.backdrop import SceneBackdrop  # noqa: E402


def _box(sid, lo, hi, kind, harm=None):
    import trimesh

    m = trimesh.creation.box(bounds=[lo, hi])
    return Structure(sid, sid, kind, "midline", "thoracic", m.vertices, m.faces, harm=harm)


@pytest.fixture
def scene(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_RECORDINGS_DIR", str(tmp_path))
    from imssim.app.controller import Controller

    atlas = Atlas("toy", [
        _box("skin", (-100, -60, 0), (100, 60, 300), "skin"),
        _box("trap", (-90, 30, 10), (90, 55, 290), "muscle"),
        _box("lung", (-90, 0, 10), (90, 25, 290), "organ", harm="pneumothorax"),
    ], [Landmark("T6_spinous", "T6 spinous process", (0.0, 60.0, 150.0))])
    pl = pv.Plotter(off_screen=True, window_size=[400, 300])
    c = Controller(atlas, pl)
    c.view("posterior")
    bd = SceneBackdrop(pl, mode="on")
    c.render = bd.render  # each change draws a frame at once (the window schedules one)
    yield c, bd
    c.session.close()
    pl.close()


def test_needle_moves_reuse_the_scene_and_draw_the_same_picture(scene):
    c, bd = scene
    assert bd.render() == "full"
    c.place_needle_at((20.0, 60.0, 150.0), (0.0, 1.0, 0.0))
    c.advance(5.0)  # the scene layer did not change since the last frame: this one copies it
    assert bd.captures == 1
    fast_before = bd.fast_frames
    for _ in range(4):
        c.advance(2.0)
    assert bd.fast_frames == fast_before + 4 and bd.captures == 1
    fast = bd.pixels()
    assert c.current.depth == pytest.approx(13.0)
    bd.invalidate()
    assert bd.render() == "full"
    full = bd.pixels()
    assert np.array_equal(fast, full)  # pixel for pixel what a full frame draws
    # the needle is in the picture (the fast frame is not just the old copy)
    assert len(np.unique(fast.reshape(-1, 3), axis=0)) > 10


def test_any_change_to_the_scene_falls_back_to_a_full_frame(scene):
    c, bd = scene
    c.render = lambda: None  # frames are drawn by the test alone
    c.place_needle_at((20.0, 60.0, 150.0), (0.0, 1.0, 0.0))
    changes = [
        lambda: c.plotter.camera.Azimuth(10),  # a camera move
        lambda: c.scene.set_kind_opacity("skin", 0.5),  # a layer's opacity
        lambda: c.overlay.set_contraction("trap", 0.1),  # a twitch pulse on the muscle
        lambda: c.overlay.highlight(["lung"]),  # a highlight
        lambda: c.overlay.add_marker("palpation", (0.0, 60.0, 100.0)),  # a marker added
        lambda: c.plotter.render_window.SetSize(420, 300),  # the window resized
    ]
    for change in changes:
        bd.render()
        bd.render()  # the copy is taken
        c.advance(1.0)
        assert bd.render() == "fast"
        change()
        assert bd.render() == "full"


def test_modes(scene):
    c, bd = scene
    bd.mode = "off"
    for _ in range(3):
        assert bd.render() == "full"
    assert bd.captures == 0
    bd.mode = "auto"
    bd.last_full_s = 0.001  # fast full frames (a GPU): nothing to gain, so no copies
    assert not bd.enabled
    bd.last_full_s = 0.2  # software OpenGL
    assert bd.enabled
    with pytest.raises(ValueError, match="IMSSIM_FAST_FRAMES"):
        SceneBackdrop(c.plotter, mode="sometimes")
