"""Issue 22 (item 7): fuzz every reader of a user-handed file with hypothesis.

Readers: scenarios, placements, recordings, import manifests and the atlas cache
(``Atlas.load``). For arbitrary bytes, arbitrary text, YAML-ish text built from YAML's
special characters, and structured-but-wrong documents (hypothesis ``recursive``
strategies, dumped as YAML or JSON), each reader must either return or raise its one
user-facing error (ScenarioError, PlacementsError, RecordingError, ManifestError,
AtlasFileError; SafeFileError for :mod:`imssim.core.safefile` itself) - never another
exception type, never a hang (each call is timed), and within a memory bound
(tracemalloc around a few of the properties). The crafted cases (billion laughs,
100,000-deep nesting, damaged caches) stay as regression tests in test_robustness.py.

No atlas is built here: scenarios are read without an atlas, placements are resolved
against a tiny fake index (every landmark unknown; absolute entries need no index) and
the atlas cache is a two-box toy atlas saved once and then damaged.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import tracemalloc
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imssim.core.model.atlas import Atlas, AtlasFileError, AtlasLookupError
from imssim.core.model.importer.manifest import ManifestError, load_manifest, validate
from imssim.core.training.placements import PlacementsError, parse, read_document
from imssim.core.training.recording import FORMAT, VERSION, RecordingError, read_recording
from imssim.core.safefile import SafeFileError, loads_json, loads_yaml, read_data
from imssim.core.training.scenario import ScenarioError, load_scenario

#: one call on a small fuzz input must finish well within this (the machine may be busy)
TIME_LIMIT_S = 5.0
#: peak Python allocation allowed for one call on a small fuzz input
MEMORY_LIMIT = 64 * 1024 * 1024

#: IMSSIM_FUZZ_EXAMPLES=1000 for a deeper local run (the default keeps the suite under ~30 s)
FUZZ = settings(max_examples=int(os.environ.get("IMSSIM_FUZZ_EXAMPLES", "50")), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])

_DIR = Path(tempfile.mkdtemp(prefix="imssim-fuzz-"))


def teardown_module(module):
    shutil.rmtree(_DIR, ignore_errors=True)


@contextmanager
def _memory_bound(limit: int = MEMORY_LIMIT):
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield
    finally:  # checked whether the reader returned or raised
        _, peak = tracemalloc.get_traced_memory()
        if started:
            tracemalloc.stop()
        assert peak < limit, f"peak allocation {peak} bytes over {limit}"


def _only(fn, *errors, memory: bool = False):
    """Call ``fn``; it may return or raise one of ``errors`` (one-line message), nothing
    else, and must not take long. Returns the result or the error."""
    t0 = time.perf_counter()
    out = None
    try:
        if memory:
            with _memory_bound():
                out = fn()
        else:
            out = fn()
    except errors as e:
        out = e
        assert str(e), "an error without a message"
    dt = time.perf_counter() - t0
    assert dt < TIME_LIMIT_S, f"took {dt:.1f} s"
    return out


def _write(name: str, data: str | bytes) -> Path:
    p = _DIR / name
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8", errors="surrogatepass") if _encodable(data) else p.write_bytes(
            data.encode("utf-8", "surrogatepass"))
    else:
        p.write_bytes(data)
    return p


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


# ----------------------------------------------------------------------------- strategies
_KEYS = ["version", "id", "title", "needles", "entry", "direction", "toward", "depth", "landmark", "label",
         "format", "seed", "type", "t", "name", "attributions", "structures", "frame", "file", "kind",
         "side", "patient", "targets", "diagnosis", "source", "licence", "attribution", "align", "meta"]
_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=12) | st.sampled_from(_KEYS))
_json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
_keys = st.sampled_from(_KEYS) | st.text(max_size=8)

#: plain data of any shape: what a structured-but-wrong document parses to
data = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=5),
                    max_leaves=25)
json_data = st.recursive(_json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=5),
                         max_leaves=25)
mappings = st.dictionaries(_keys, data, max_size=6)

#: text built from YAML's special characters and a few keywords
_YAML_BITS = ["\n", " ", "  ", "- ", ": ", "? ", "&a ", "*a", "!!str ", "!x ", "<<: ", "{", "}", "[", "]", ",",
              "'", '"', "|", ">", "#", "%YAML 1.2\n", "---\n", "...\n", "\t", "\\", "~", ".inf", ".nan", "0x1F",
              "1e999", "-", "@", "`", "\ufeff", "\x00", "\udc80", "é"] + [k + ": " for k in _KEYS]
yamlish = st.lists(st.sampled_from(_YAML_BITS) | st.text(max_size=4), max_size=40).map("".join)

raw_text = st.text(max_size=300)
raw_bytes = st.binary(max_size=300)


def _yaml_dump(obj) -> str:
    from ruamel.yaml import YAML

    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.dump(obj, buf)
    return buf.getvalue()


def dumped(strategy):
    """A document from ``strategy``, written as YAML (block style) or JSON."""
    return st.tuples(strategy, st.booleans()).map(
        lambda t: json.dumps(t[0]) if t[1] else _yaml_dump(t[0]))


# ----------------------------------------------------------------------------- the safe reader
@FUZZ
@given(st.one_of(raw_text, yamlish, dumped(data)))
def test_safefile_loads_yaml(text):
    _only(lambda: loads_yaml(text, "f.yaml"), SafeFileError)


@FUZZ
@given(st.one_of(raw_text, dumped(json_data), st.lists(st.sampled_from(list('[]{}",:0 \\tnaNIfy-1e.')), max_size=80).map("".join)))
def test_safefile_loads_json(text):
    _only(lambda: loads_json(text, "f.json"), SafeFileError)


@FUZZ
@given(raw_bytes, st.sampled_from(["f.yaml", "f.json"]))
def test_safefile_read_data_bytes(blob, name):
    p = _write(name, blob)
    _only(lambda: read_data(p), SafeFileError, memory=True)


# ----------------------------------------------------------------------------- scenarios
def _scenario(text=None, blob=None):
    p = _write("case.yaml", blob if blob is not None else text)
    return lambda: load_scenario(p)


@FUZZ
@given(st.one_of(raw_text, yamlish, dumped(data), dumped(mappings)))
def test_scenario_text(text):
    _only(_scenario(text=text), ScenarioError)


@FUZZ
@given(raw_bytes)
def test_scenario_bytes(blob):
    _only(_scenario(blob=blob), ScenarioError, memory=True)


# ----------------------------------------------------------------------------- placements
class _FakeAtlas:
    def landmark(self, name):
        raise AtlasLookupError("landmark", str(name), [])


class _FakeIndex:
    """Enough of a TissueIndex for ``parse``: every landmark is unknown."""

    atlas = _FakeAtlas()


_vec = st.lists(st.integers(-500, 500) | st.floats(allow_nan=True, allow_infinity=True) | _scalars, min_size=0,
                max_size=4) | _scalars
needle = st.fixed_dictionaries({}, optional={
    "entry": _vec, "direction": _vec, "toward": _vec, "landmark": _scalars, "depth": _scalars | st.floats(0, 60),
    "length_mm": _scalars, "gauge_mm": _scalars, "label": data, "t": _scalars, "side": _scalars,
    "approach": _scalars, "medial_deg": _scalars, "lateral_mm": _scalars})
placements_doc = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from([1, 2, "1", None]), "needles": st.lists(needle, max_size=3) | data,
    "comment": data, "scenario": data}) | mappings


@FUZZ
@given(placements_doc)
def test_placements_parse_structured(doc):
    _only(lambda: parse(doc, _FakeIndex(), "p.yaml"), PlacementsError)


@FUZZ
@given(st.one_of(raw_text, yamlish, dumped(placements_doc), dumped(data)), st.sampled_from(["p.yaml", "p.json"]))
def test_placements_read_text(text, name):
    p = _write(name, text)

    def go():
        doc = read_document(p)
        return parse(doc, _FakeIndex(), str(p))

    _only(go, PlacementsError)


@FUZZ
@given(raw_bytes)
def test_placements_read_bytes(blob):
    p = _write("p.yaml", blob)
    _only(lambda: read_document(p), PlacementsError, memory=True)


# ----------------------------------------------------------------------------- recordings
_header = st.fixed_dictionaries({"format": st.just(FORMAT) | _scalars, "version": st.just(VERSION) | _scalars},
                                optional={"seed": _scalars, "case": data})
_record = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["action", "event", "pose"]) | _scalars,
                                              "t": _scalars, "kind": data}) | json_data
_line = _record.map(json.dumps) | raw_text.map(lambda s: s.replace("\n", " ")) | st.sampled_from(
    ["", "{", '{"a": NaN}', "[" * 40 + "]" * 40, '{"type": "action"'])
recording_text = st.tuples(_header.map(json.dumps) | _line, st.lists(_line, max_size=6), st.booleans()).map(
    lambda t: "\n".join([t[0], *t[1]]) + ("\n" if t[2] else ""))


def _read_recording(p):
    rec = read_recording(p)
    rec.actions, rec.events, rec.poses  # the accessors the replayer uses
    return rec


@FUZZ
@given(st.one_of(recording_text, raw_text))
def test_recording_text(text):
    p = _write("r.jsonl", text)
    _only(lambda: _read_recording(p), RecordingError)


@FUZZ
@given(raw_bytes)
def test_recording_bytes(blob):
    p = _write("r.jsonl", blob)
    _only(lambda: _read_recording(p), RecordingError, memory=True)


# ----------------------------------------------------------------------------- import manifests
_structure = st.fixed_dictionaries({}, optional={
    "file": st.sampled_from(["a.stl", "b.obj", "c.txt", "../x.stl"]) | _scalars, "id": _scalars, "name": _scalars,
    "kind": st.sampled_from(["bone", "muscle", "skin", "nerve"]) | _scalars, "side": st.sampled_from(
        ["left", "right", "midline"]) | _scalars, "level": _scalars, "sha256": _scalars, "innervation": data})
manifest_doc = st.fixed_dictionaries({}, optional={
    "name": _scalars, "attributions": st.lists(st.fixed_dictionaries({}, optional={
        "source": _scalars, "licence": _scalars, "attribution": _scalars}), max_size=2) | data,
    "frame": st.fixed_dictionaries({}, optional={"axes": st.sampled_from(["LPS", "LLS", "auto", "XYZ"]) | _scalars,
                                                 "units": _scalars}) | data,
    "structures": st.lists(_structure, max_size=3) | data, "align": data, "fill": _scalars, "decimate": _scalars,
    "profile": _scalars, "base": _scalars}) | mappings


@FUZZ
@given(st.one_of(manifest_doc, data))
def test_manifest_validate_structured(doc):
    _only(lambda: validate(doc, "m.yaml"), ManifestError)


@FUZZ
@given(st.one_of(raw_text, yamlish, dumped(manifest_doc), raw_bytes))
def test_manifest_file(content):
    p = _write("m.yaml", content)
    _only(lambda: load_manifest(p), ManifestError, memory=True)


# ----------------------------------------------------------------------------- the atlas cache
@pytest.fixture(scope="module")
def toy_cache():
    """The arrays of a two-box toy atlas as Atlas.save writes them (no atlas build)."""
    import trimesh

    from imssim.core.model.atlas import Landmark, Structure

    m = trimesh.creation.box(bounds=[(-10, -10, 0), (10, 10, 20)])
    m2 = trimesh.creation.box(bounds=[(-5, -5, 2), (5, 5, 18)])
    a = Atlas("toy", [Structure("skin", "skin", "skin", "midline", "lumbar", m.vertices, m.faces),
                      Structure("bone", "bone", "bone", "midline", "lumbar", m2.vertices, m2.faces)],
              [Landmark("L5_spinous", "L5 spinous process", (0.0, 10.0, 10.0))])
    p = _DIR / "toy.npz"
    a.save(p)
    assert len(Atlas.load(p)) == 2
    raw = p.read_bytes()
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    return raw, arrays, json.loads(bytes(arrays["header"]).decode())


def _save_npz(arrays: dict) -> Path:
    p = _DIR / "cache.npz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    return p


@FUZZ
@given(raw_bytes)
def test_atlas_cache_random_bytes(blob):
    p = _write("cache.npz", blob)
    _only(lambda: Atlas.load(p), AtlasFileError, memory=True)


@FUZZ
@given(st.integers(0, 10**6), st.integers(0, 255), st.booleans())
def test_atlas_cache_cut_or_flipped(toy_cache, at, byte, cut):
    raw = toy_cache[0]
    at %= len(raw)
    blob = raw[:at] if cut else raw[:at] + bytes([byte]) + raw[at + 1:]
    p = _write("cache.npz", blob)
    _only(lambda: Atlas.load(p), AtlasFileError)


_header_text = st.one_of(dumped(json_data).filter(lambda s: not s.startswith("#")), raw_text,
                         json_data.map(lambda d: json.dumps({"format": Atlas.FORMAT_VERSION, "name": "x",
                                                             "structures": d})))


@FUZZ
@given(_header_text)
def test_atlas_cache_random_header(toy_cache, text):
    arrays = dict(toy_cache[1])
    arrays["header"] = np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)
    p = _save_npz(arrays)
    _only(lambda: Atlas.load(p), AtlasFileError)


def _paths(obj, here=()):
    yield here
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, here + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, here + (i,))


@FUZZ
@given(st.data())
def test_atlas_cache_header_one_field_wrong(toy_cache, draw):
    """The real header with one value (anywhere in it) replaced by junk of any type."""
    header = json.loads(json.dumps(toy_cache[2]))
    where = draw.draw(st.sampled_from([p for p in _paths(header) if p]))
    junk = draw.draw(json_data)
    node = header
    for k in where[:-1]:
        node = node[k]
    if draw.draw(st.booleans()):
        node[where[-1]] = junk
    elif isinstance(node, dict):
        del node[where[-1]]
    else:
        node.pop(where[-1])
    arrays = dict(toy_cache[1])
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    p = _save_npz(arrays)
    _only(lambda: Atlas.load(p), AtlasFileError)


_dtypes = st.sampled_from(["u1", "i4", "i8", "u8", "f4", "f8", "bool", "c8", "U3", "S2"])
_array = st.tuples(_dtypes, st.lists(st.integers(0, 4), max_size=3), st.integers(-3, 2**40)).map(
    lambda t: np.full(tuple(t[1]), t[2]).astype(t[0]))


@FUZZ
@given(st.data())
def test_atlas_cache_random_members(toy_cache, draw):
    """Members of the real cache dropped, replaced by arrays of any dtype and shape, or added."""
    arrays = dict(toy_cache[1])
    for name in draw.draw(st.lists(st.sampled_from(["header", "vertices", "faces", "voff", "foff", "extra"]),
                                   min_size=1, max_size=3, unique=True)):
        if draw.draw(st.booleans()) and name in arrays:
            del arrays[name]
        else:
            arrays[name] = draw.draw(_array)
    p = _save_npz(arrays)
    _only(lambda: Atlas.load(p), AtlasFileError)


@FUZZ
@given(st.dictionaries(st.sampled_from(["header", "vertices", "faces", "voff", "foff", "x"]), raw_bytes, max_size=5))
def test_atlas_cache_random_zip_members(members):
    """A zip whose members are raw bytes (not .npy files), or a pickled object array."""
    p = _DIR / "cache.npz"
    with zipfile.ZipFile(p, "w") as z:
        for name, blob in members.items():
            z.writestr(name + ".npy", blob)
    _only(lambda: Atlas.load(p), AtlasFileError, memory=True)


def test_atlas_cache_pickled_member_refused(toy_cache):
    arrays = dict(toy_cache[1])
    arrays["header"] = np.array([{"format": 1}], dtype=object)
    p = _DIR / "cache.npz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)  # allow_pickle is on for writing
    with pytest.raises(AtlasFileError, match="not a readable"):
        Atlas.load(p)
