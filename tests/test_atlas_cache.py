"""The atlas cache: keyed, detected when corrupt or stale, rebuilt without crashing."""

from __future__ import annotations

import pytest

from imssim.core.model import store
from imssim.core.model.atlas import Atlas, AtlasFileError


@pytest.fixture(scope="module")
def full_atlas(atlas):
    return store.load_builtin(habitus=None)  # every habitus variant, as cached


@pytest.fixture()
def private_cache(tmp_path, monkeypatch, full_atlas):
    monkeypatch.setenv("IMSSIM_CACHE_DIR", str(tmp_path))
    path = store.builtin_path()
    full_atlas.save(path)  # seed with the session's atlas to avoid a rebuild
    return path


def test_warm_load_uses_cache(private_cache, monkeypatch):
    calls = []
    monkeypatch.setattr(store, "build_builtin", lambda progress=None: calls.append(1))
    a = store.load_builtin()
    assert calls == [] and len(a) > 100


def test_corrupt_cache_is_rebuilt(private_cache):
    private_cache.write_bytes(b"this is not an npz file")
    with pytest.raises(AtlasFileError) as e:
        Atlas.load(private_cache)
    assert str(private_cache) in str(e.value)
    a = store.load_builtin(habitus=None)
    assert "gluteus_medius_r" in a
    # the file on disk is sound again
    assert len(Atlas.load(private_cache)) == len(a)


def test_truncated_cache_is_rebuilt(private_cache):
    data = private_cache.read_bytes()
    private_cache.write_bytes(data[: len(data) // 3])
    a = store.load_builtin(habitus=None)
    assert len(Atlas.load(private_cache)) == len(a)


def test_stale_cache_key_is_rebuilt(private_cache, monkeypatch):
    a = Atlas.load(private_cache)
    a.meta["cache_key"] = "stale"
    a.save(private_cache)
    rebuilt = []
    real = store.build_builtin

    def spy(progress=None):
        rebuilt.append(1)
        return real(progress)

    monkeypatch.setattr(store, "build_builtin", spy)
    b = store.load_builtin()
    assert rebuilt == [1]
    assert b.meta["cache_key"] == store.builtin_key()


def test_cache_key_tracks_inputs(monkeypatch, tmp_path):
    k1 = store.builtin_key()
    monkeypatch.setattr(store, "__version__", "9.9.9")
    assert store.builtin_key() != k1


def test_unknown_imported_atlas_is_a_clear_error():
    with pytest.raises(AtlasFileError, match="no atlas named 'nope'"):
        store.load_atlas("nope")


def test_build_progress_only_goes_forward(monkeypatch):
    """Each stage reports its own 0-1; the user sees one bar that never jumps back."""
    import trimesh

    from imssim.core.model.atlas import Atlas, Structure
    from imssim.core.model.build import builtin

    box = trimesh.creation.box()
    toy = Atlas("toy", [Structure("b", "b", "bone", "midline", "thoracic", box.vertices, box.faces)], [])

    def fake_base(progress):
        for f in (0.0, 0.5, 1.0):
            progress("muscles", f)
        return toy

    def stage(atlas, progress):
        for f in (0.0, 0.3, 0.9, 1.0):
            progress("sub-step", f)

    monkeypatch.setattr(builtin, "base", fake_base)
    monkeypatch.setattr(builtin, "STAGES", [stage, stage, stage])
    seen = []
    builtin.build(lambda m, f: seen.append(f))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0
    assert len(seen) == 3 + 3 * (1 + 4) + 1
