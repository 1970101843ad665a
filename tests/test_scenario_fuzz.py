"""Property-based: thousands of malformed scenario documents give only clean validation errors.

Two generators: (1) a valid scenario with random damage (values replaced by junk of
any type, keys deleted or misspelt, lists emptied), dumped as YAML; (2) raw text built
from YAML's special characters and scenario keywords. Every result must be either a
valid scenario or a list of ``file:line:column: path: message`` issues - never another
exception. With the atlas, the name checks run too.
"""

from __future__ import annotations

import copy
import io
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from imssim.core.training.scenario import ScenarioIssue, validate_file

VALID = {
    "version": 1,
    "id": "fuzz-case",
    "title": "Fuzz",
    "author": "Test",
    "learning_objectives": ["Find the segment from the findings."],
    "patient": {
        "age": 40, "sex": "female", "habitus": "lean", "history": "Months of low back pain.",
        "presenting_complaint": "Aching right low back.",
        "pain": [{"region": "low back", "side": "right", "structure": "gluteus_medius_r"}],
        "findings": [{"kind": "tender_point", "description": "d", "structure": "multifidus_L5_r",
                      "locus": {"landmark": "L5_spinous", "offset_mm": [-15, 0, 0]}}],
    },
    "diagnosis": {"condition": "chronic low back pain", "segments": ["L5"], "side": "right"},
    "supersensitive_muscles": [
        {"structure": "gluteus_medius_r", "supersensitivity": 0.8,
         "trigger_loci": [{"fraction": 0.3, "radius_mm": 10}, {"xyz": [-108, -62, 885]}]},
    ],
    "targets": {"derive": True, "level_tolerance": 1, "add": [{"structure": "gluteus_maximus_r", "weight": 2}],
                "remove": ["semitendinosus_r"]},
    "safety": {"watch": "all", "needles": {"lengths_mm": [25, 40], "gauges_mm": [0.25]},
               "zones": [{"landmark": "psis_r", "radius_mm": 50, "max_length_mm": 40}], "max_needles": 5},
    "modes": {"default": "practice", "exam": {"labels": False, "timer_s": 600}},
    "quiz": [
        {"id": "q1", "type": "multiple_choice", "question": "q", "choices": ["a", "b"], "answer": 1, "explanation": "e"},
        {"id": "q2", "type": "pick_structure", "question": "q", "answer": ["multifidus_L5_r"], "explanation": "e"},
    ],
    "scoring": {"weights": {"targeting": 1, "safety": 1}, "pass_mark": 70},
}

ISSUE_RE = re.compile(r"^<fuzz>(:\d+:\d+)?: (warning: )?\S.*$")

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["L5", "S6", "C0", "left", "all", "quiz", "gluteus_medius_r",
                                               "glutus_medius_r", "L5_spinous", "multiple_choice", "pick_structure"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=4,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(VALID) if p]


@st.composite
def damaged(draw):
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            key = path[-1]
            parent[key]  # noqa: B018 - still there?
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "rename", "empty"]))
        if action == "replace" or (action in ("delete", "rename") and isinstance(parent, list)):
            parent[key] = draw(junk)
        elif action == "delete":
            del parent[key]
        elif action == "rename":
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(key)
        else:
            parent[key] = type(parent[key])() if isinstance(parent[key], (list, dict, str)) else None
    return doc


def _dump(doc) -> str:
    y = YAML(typ="safe", pure=True)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def _check(issues):
    assert isinstance(issues, list)
    for i in issues:
        assert isinstance(i, ScenarioIssue)
        s = str(i)
        assert "Traceback" not in s
        assert ISSUE_RE.match(s) and "\n" not in s, s
        s.encode("utf-8")  # printable on any UTF-8 terminal
        assert i.severity in ("error", "warning") and i.message


FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged(), st.booleans())
def test_damaged_documents_schema_only(doc, block):
    # block-style YAML, or JSON (flow style, also YAML): both paths of the position mapping
    text = _dump(doc) if block else json.dumps(doc)
    _check(validate_file("<fuzz>", text=text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(doc=damaged())
def test_damaged_documents_against_the_atlas(doc, atlas):
    _check(validate_file("<fuzz>", atlas, text=_dump(doc)))


yaml_text = st.lists(
    st.sampled_from([
        "version: 1\n", "id: x\n", "patient:\n", "  age: ", "- ", ": ", "{", "}", "[", "]", ",", "&a ", "*a ", "!!str ",
        "!x ", "'", '"', "|\n", ">\n", "#c\n", "---\n", "...\n", "\t", "  ", "\n", "? ", "%YAML 1.2\n", "<<: ", "@",
        "`", "\\", "\x00", "é", "2020-01-01", ".nan", "1e999", "0x1F", "~", "null", "true",
    ]) | st.text(max_size=5),
    max_size=40,
).map("".join)


@FAST
@given(yaml_text)
def test_random_yaml_text(text):
    _check(validate_file("<fuzz>", text=text))


def test_the_unbroken_document_is_valid(atlas):
    """The fuzzers start from a valid document (else they would test little)."""
    assert validate_file("<fuzz>", atlas, text=_dump(VALID)) == []


@settings(max_examples=150, deadline=None)
@given(age=st.integers(12, 110), title=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                                                min_size=1, max_size=30).filter(lambda s: s.strip() == s and s.strip()),
       tol=st.integers(0, 5))
def test_round_trip_is_byte_identical(age, title, tol):
    """Any valid document written by an author dumps back to the same text."""
    from imssim.core.training.scenario import dump_document, load_scenario

    doc = copy.deepcopy(VALID)
    doc["patient"]["age"] = age
    doc["title"] = title
    doc["targets"]["level_tolerance"] = tol
    text = "# header comment\n" + _dump(doc).replace("patient:\n", "patient:   # trailing comment\n", 1)
    sc = load_scenario("<fuzz>", text=text)
    assert sc.title == title and sc.patient.age == age
    assert dump_document(sc.document) == text
