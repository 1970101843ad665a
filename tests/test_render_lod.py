"""Simplified frames while the camera moves (render/lod.py), with the off-screen renderer."""

from __future__ import annotations

import numpy as np
import pytest

pv = pytest.importorskip("pyvista", reason="pyvista renders the scene")

from imssim.core.model.atlas import Atlas, Structure  # noqa: E402
from imssim.render import lod as lodmod  # noqa: E402
from imssim.render.lod import InteractionLOD, simplified_meshes  # noqa: E402
from imssim.render.scene import AtlasScene  # noqa: E402


def _sphere(sid, centre, r, kind, sub=4):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=sub, radius=r)
    m.apply_translation(centre)
    return Structure(sid, sid, kind, "midline", "lumbar", m.vertices, m.faces)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSSIM_CACHE_DIR", str(tmp_path / "cache"))
    return Atlas("toy", [
        _sphere("skin", (0, 0, 0), 120, "skin"),
        _sphere("muscle_a", (-40, 0, 0), 40, "muscle"),
        _sphere("bone_b", (50, 0, 0), 30, "bone"),
        _sphere("nerve_c", (0, 50, 0), 8, "nerve", sub=1),  # small: kept whole
    ])


@pytest.fixture
def view(toy):
    pl = pv.Plotter(off_screen=True, window_size=[320, 240])
    scene = AtlasScene.build(pl, toy)
    pl.enable_anti_aliasing("fxaa")
    calls = []
    lod = InteractionLOD(pl, scene, mode="on", schedule=lambda ms, fn: calls.append((ms, fn)))
    pl.camera_position = [(0, 600, 0), (0, 0, 0), (0, 0, 1)]
    yield pl, scene, lod, calls
    lod.detach()
    pl.close()


def test_simplified_meshes_are_smaller_and_cached(toy, tmp_path):
    got = simplified_meshes(toy)
    assert set(got) == {"skin", "muscle_a", "bone_b"}  # the 80-face nerve is drawn whole
    for sid, (v, f) in got.items():
        n = len(toy.structures[sid].faces)
        assert 0 < len(f) <= max(lodmod.TARGET_FACES * n, lodmod.MIN_KEEP) * 1.1
    assert list((tmp_path / "cache" / "lod").glob("*.npz"))
    again = simplified_meshes(toy)  # from the disk cache
    assert all(np.array_equal(again[k][1], got[k][1]) for k in got)


def test_moving_camera_draws_the_proxy_then_the_full_picture(view):
    pl, scene, lod, calls = view
    full = pl.screenshot(None, return_img=True)
    assert lod.last_frame == "full"
    hidden_before = {sid for sid, a in scene.actors.items() if not a.GetVisibility()}
    n_lights = pl.renderer.GetLights().GetNumberOfItems()
    pl.camera.Azimuth(20)
    pl.render_window.Render()
    assert lod.last_frame == "lod" and lod.active
    assert lod._proxy.GetVisibility()
    assert not any(a.GetVisibility() for a in scene.actors.values())
    assert not pl.renderer.GetUseFXAA()
    assert pl.renderer.GetLights().GetNumberOfItems() == 1
    # the proxy holds the opaque structures only (the translucent skin is left out)
    n_proxy = lod._proxy.GetMapper().GetInput().GetNumberOfCells()
    assert n_proxy < sum(len(s.faces) for s in scene.atlas if s.kind != "skin") / 4
    assert calls and calls[-1][0] == lodmod.SETTLE_MS  # the full frame is scheduled
    pl.camera.Azimuth(-20)
    calls[-1][1]()  # the camera has been still: the full picture
    assert lod.last_frame == "full" and not lod.active
    assert {sid for sid, a in scene.actors.items() if not a.GetVisibility()} == hidden_before
    assert pl.renderer.GetUseFXAA() and pl.renderer.GetLights().GetNumberOfItems() == n_lights
    assert np.array_equal(pl.screenshot(None, return_img=True), full)


def test_layers_hidden_while_the_view_moves_stay_hidden_and_shown_ones_stay_nameable(view):
    """The window's layer switches and the picking read what is *shown*, not which actors
    the simplified frame has swapped out for a moment."""
    pl, scene, lod, calls = view
    pl.render_window.Render()
    pl.camera.Azimuth(20)
    pl.render_window.Render()
    assert lod.active and not scene.actors["muscle_a"].GetVisibility()
    assert scene.shown("muscle_a") and scene.shown("bone_b")  # swapped out, still shown
    scene.set_kind_visible("muscle", False)  # the user unticks muscles while the view moves
    assert not scene.shown("muscle_a")
    calls[-1][1]()  # the camera has been still: the full picture
    assert not lod.active
    assert not scene.actors["muscle_a"].GetVisibility()  # not brought back by the full frame
    assert scene.actors["bone_b"].GetVisibility() and scene.shown("bone_b")
    assert not scene.swapped


def test_a_drag_is_simplified_until_its_end(view):
    pl, scene, lod, calls = view
    pl.render_window.Render()
    style = pl.iren.interactor.GetInteractorStyle()
    style.InvokeEvent("StartInteractionEvent")
    for _ in range(3):
        pl.camera.Elevation(5)
        pl.render_window.Render()
        assert lod.last_frame == "lod"
    assert not calls  # no full frame while the button is held
    style.InvokeEvent("EndInteractionEvent")
    assert calls
    calls[-1][1]()
    assert lod.last_frame == "full"


def test_a_repeated_frame_draws_nothing_and_shows_the_same_picture(view, monkeypatch):
    pl, scene, lod, calls = view
    monkeypatch.setattr(lodmod, "REPEAT_OVER_S", 0.0)
    a = pl.screenshot(None, return_img=True)
    pl.render_window.Render()
    assert lod.last_frame == "repeat"
    assert np.array_equal(pl.screenshot(None, return_img=True), a)
    scene.actors["muscle_a"].GetProperty().SetColor(0, 0, 1)  # any change: a real frame
    pl.render_window.Render()
    assert lod.last_frame == "full"


def test_off_and_auto_on_a_fast_machine_draw_every_frame_in_full(toy):
    pl = pv.Plotter(off_screen=True, window_size=[200, 150])
    scene = AtlasScene.build(pl, toy)
    for mode in ("off", "auto"):
        lod = InteractionLOD(pl, scene, mode=mode, lod={})
        lod.last_full_s = 0.0 if mode == "auto" else 10.0
        pl.render_window.Render()
        pl.camera.Azimuth(10)
        lod.last_full_s = 0.0 if mode == "auto" else 10.0
        pl.render_window.Render()
        assert lod.last_frame == "full" and not lod.active
        lod.detach()
    with pytest.raises(ValueError):
        InteractionLOD(pl, scene, mode="sometimes")
    pl.close()
