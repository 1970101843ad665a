"""Reading and writing scenario files.

Scenarios are read with ruamel.yaml's round-trip loader, so saving one back keeps the
author's comments, key order and quoting, and every node knows its line and column (for
``file:line:column`` messages). Reading is safe:

* the round-trip loader never constructs Python objects from tags, and we go further and
  refuse every explicit tag (``!!python/object``, ``!foo``), dates and binary values;
* anchors and aliases (``&x`` / ``*x``) are refused, so a "billion laughs" file cannot
  blow up in memory when it is expanded;
* files over :data:`MAX_SCENARIO_BYTES` are refused before they are parsed;
* files a scenario names (images) must stay inside the scenario's folder.
"""

from __future__ import annotations

import difflib
import io
import math
import re
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import ScenarioError, ScenarioIssue
from .model import Scenario

#: Largest scenario file imssim reads.
MAX_SCENARIO_BYTES = 256 * 1024
#: Deepest nesting accepted (the schema needs about 6).
MAX_DEPTH = 24


#: House style for new files: mappings by 2, list dashes indented 2 under their key.
DEFAULT_INDENT = (2, 4, 2)

_KEY_BLOCK = re.compile(r"^( *)[^\s#-][^#]*:\s*(#.*)?$")
_ITEM = re.compile(r"^( *)(- |-$)")
_KEY = re.compile(r"^( *)[^\s#-][^:#]*:( |$)")


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation used by ``text``, for ruamel's ``indent()``.

    Round-trip keeps comments and order but re-indents with one global style; using the
    author's own style keeps an unchanged file byte-identical.
    """
    mapping = seq_offset = None
    lines = text.splitlines()
    for prev, line in zip(lines, lines[1:]):
        m = _KEY_BLOCK.match(prev)
        if not m:
            continue
        base = len(m.group(1))
        it = _ITEM.match(line)
        if it and seq_offset is None:
            seq_offset = len(it.group(1)) - base
        k = _KEY.match(line)
        if k and not it and mapping is None and len(k.group(1)) > base:
            mapping = len(k.group(1)) - base
        if mapping is not None and seq_offset is not None:
            break
    mapping = mapping or DEFAULT_INDENT[0]
    if seq_offset is None or seq_offset < 0:
        return DEFAULT_INDENT
    return mapping, seq_offset + 2, seq_offset


def _yaml(indent: tuple[int, int, int] = DEFAULT_INDENT) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    y.width = 4096  # never re-wrap the author's lines
    return y


# ----------------------------------------------------------------------------- positions
def node_position(doc: Any, loc: tuple) -> tuple[int, int, tuple]:
    """(line, column, path) of ``loc`` inside a round-trip document, both from 1.

    Walks ``loc`` (keys and indexes) as far as the document goes; parts of ``loc`` that
    are not in the document (pydantic's union tags, a missing field) keep the position
    of the deepest node found. Returns the path made of the parts actually present,
    plus a trailing missing field name.
    """
    line, col = 0, 0
    node = doc
    shown: list = []
    if isinstance(doc, (CommentedMap, CommentedSeq)) and getattr(doc, "lc", None) is not None:
        line, col = (doc.lc.line or 0) + 1, (doc.lc.col or 0) + 1
    for i, part in enumerate(loc):
        if isinstance(node, CommentedMap) and not isinstance(part, int) and part in node:
            try:
                lc = node.lc.value(part) if node[part] is not None else node.lc.key(part)
                if isinstance(node[part], (CommentedMap, CommentedSeq)) and node[part].lc.line is not None:
                    lc = (node[part].lc.line, node[part].lc.col)
                # a mapping value starts on the next line: point at its key instead
                if isinstance(node[part], CommentedMap):
                    lc = node.lc.key(part)
                line, col = lc[0] + 1, lc[1] + 1
            except (KeyError, TypeError, AttributeError):
                pass
            shown.append(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            try:
                lc = node.lc.item(part)
                line, col = lc[0] + 1, lc[1] + 1
            except (KeyError, TypeError, AttributeError):
                pass
            shown.append(part)
            node = node[part]
        elif _is_tag(part):
            continue  # a union branch name: not in the document
        else:
            # not in the document: the missing field (shown when last)
            if i == len(loc) - 1:
                shown.append(part)
            node = None
    return line, col, tuple(shown)


def _is_tag(part) -> bool:
    """pydantic's names for union branches, which are not document keys."""
    return isinstance(part, str) and (part in ("multiple_choice", "pick_structure") or any(c in part for c in "[]()"))


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(parts: tuple) -> str:
    """``patient.findings[0].locus``; odd keys are quoted: ``patient['my key']``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _NAME.match(str(p)):
            out += ("." if out else "") + str(p)
        else:
            out += f"[{str(p)!r}]"
    return out


# ----------------------------------------------------------------------------- safety
class _Unsafe(Exception):
    def __init__(self, node, msg):
        self.node, self.msg = node, msg


_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "str", "int", "float", "bool", "null")}


def _plain(node: Any, seen: set[int], depth: int = 0, parent=None, key=None) -> Any:
    """The document as plain dicts/lists/scalars, refusing tags, aliases and odd types."""
    if depth > MAX_DEPTH:
        raise _Unsafe((parent, key), f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, TaggedScalar):
        raise _Unsafe((parent, key), f"YAML tag {node.tag.value!r} is not allowed in a scenario")
    if isinstance(node, (CommentedMap, CommentedSeq)):
        tag = getattr(node, "tag", None)
        tv = getattr(tag, "value", None) if tag is not None else None
        if tv and tv not in _PLAIN_TAGS:
            raise _Unsafe((parent, key), f"YAML tag {tv!r} is not allowed in a scenario")
        if id(node) in seen:
            raise _Unsafe((parent, key), "YAML anchors and aliases (&name / *name) are not allowed in a scenario")
        seen.add(id(node))
        if isinstance(node, CommentedMap):
            if getattr(node, "merge", None):
                raise _Unsafe((parent, key), "YAML merge keys (<<) are not allowed in a scenario")
            for k in node:
                if isinstance(k, str) and _SURROGATE.search(k):
                    raise _Unsafe((parent, key), "a key holds an invalid character (an unpaired UTF-16 surrogate escape)")
            return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): _plain(v, seen, depth + 1, node, k)
                    for k, v in node.items()}
        return [_plain(v, seen, depth + 1, node, i) for i, v in enumerate(node)]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        f = float(node)
        if not math.isfinite(f):
            raise _Unsafe((parent, key), "numbers must be finite (not .inf or .nan)")
        return f
    if isinstance(node, str):
        if _SURROGATE.search(node):
            raise _Unsafe((parent, key), "text holds an invalid character (an unpaired UTF-16 surrogate escape)")
        return str(node)
    kind = type(node).__name__
    hint = "; put it in quotes if it is text" if kind in ("date", "datetime") else ""
    raise _Unsafe((parent, key), f"a value of YAML type {kind} is not allowed{hint}")


def _position_of(parent, key) -> tuple[int, int]:
    try:
        if isinstance(parent, CommentedMap):
            lc = parent.lc.value(key)
        elif isinstance(parent, CommentedSeq):
            lc = parent.lc.item(key)
        else:
            return 0, 0
        return lc[0] + 1, lc[1] + 1
    except (KeyError, TypeError, AttributeError, IndexError):
        return 0, 0


# ----------------------------------------------------------------------------- loading
def read_document(path: str | Path, text: str | None = None) -> CommentedMap:
    """Parse a scenario file into a round-trip document (raises ScenarioError)."""
    path = Path(path)
    name = str(path)
    if text is None:
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"cannot read the file ({e.strerror or e})")]) from None
        if size > MAX_SCENARIO_BYTES:
            raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"file is {size} bytes, over the {MAX_SCENARIO_BYTES}-byte limit for scenarios")])
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
        except OSError as e:
            raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"cannot read the file ({e.strerror or e})")]) from None
    elif len(text.encode("utf-8", "replace")) > MAX_SCENARIO_BYTES:
        raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"text is over the {MAX_SCENARIO_BYTES}-byte limit for scenarios")])
    from ...safefile import SafeFileError, yaml_safety_check

    try:  # anchors/aliases (scalar ones too), tags and deep nesting refused before anything is built
        yaml_safety_check(text, name, MAX_DEPTH, "a scenario", syntax=False)
    except SafeFileError as e:
        raise ScenarioError([ScenarioIssue(name, e.line or 0, 0, e.field, e.message)]) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. ReusedAnchorWarning: aliases are refused below anyway
            docs = list(_yaml().load_all(io.StringIO(text)))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "YAML syntax error"
        msg = " ".join(msg.split())
        raise ScenarioError([ScenarioIssue(name, line, col, "", f"YAML syntax: {msg}")]) from None
    except (YAMLError, RecursionError, ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"YAML syntax: {msg}")]) from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        what = "is empty" if not docs else f"holds {len(docs)} YAML documents (---); a scenario is one"
        raise ScenarioError([ScenarioIssue(name, 0, 0, "", f"file {what}")])
    doc = docs[0]
    if not isinstance(doc, CommentedMap):
        raise ScenarioError([ScenarioIssue(name, 1, 1, "", "a scenario is a mapping of fields (version:, id:, title:, ...)")])
    doc._imssim_indent = guess_indent(text)
    return doc


def _pydantic_issues(name: str, doc: Any, err: ValidationError) -> list[ScenarioIssue]:
    out = []
    errors = err.errors(include_url=False)
    # a misspelt key gives "unknown field" plus "missing field": keep only the first,
    # whose "did you mean" already names the missing one
    covered = set()
    for e in errors:
        if e.get("type") == "extra_forbidden" and e.get("loc"):
            loc = tuple(e["loc"])
            known = fields_at(loc[:-1]) or set()
            for c in difflib.get_close_matches(str(loc[-1]), sorted(known), n=1, cutoff=0.6):
                covered.add(loc[:-1] + (c,))
    errors = [e for e in errors if not (e.get("type") == "missing" and tuple(e.get("loc", ())) in covered)]
    for e in errors:
        loc = tuple(e.get("loc", ()))
        msg = e.get("msg", "invalid value")
        if e.get("type") == "extra_forbidden":
            field = loc[-1] if loc else ""
            known = fields_at(loc[:-1])
            close = difflib.get_close_matches(str(field), sorted(known), n=1, cutoff=0.6) if known else []
            if close:
                hint = f"; did you mean {close[0]!r}?"
            elif known:
                hint = f"; expected one of {', '.join(sorted(known))}"
            else:
                hint = ""
            line, col, shown = node_position(doc, loc)
            parent, _, _ = _walk(doc, loc[:-1])
            if isinstance(parent, CommentedMap) and field in parent:
                try:
                    kl = parent.lc.key(field)
                    line, col = kl[0] + 1, kl[1] + 1
                except (KeyError, TypeError, AttributeError):
                    pass
            shown = shown[:-1] if shown and shown[-1] == field else shown
            out.append(ScenarioIssue(name, line, col, format_path(shown), f"unknown field {field!r}{hint}"))
            continue
        line, col, shown = node_position(doc, loc)
        if e.get("type") == "missing":
            msg = f"missing required field {loc[-1]!r}" if loc else "missing required field"
            shown = shown[:-1] if shown and shown[-1] == loc[-1] else shown
        elif e.get("type") == "union_tag_invalid":
            msg = "type must be 'multiple_choice' or 'pick_structure'"
        elif e.get("type") == "union_tag_not_found":
            msg = "missing 'type': 'multiple_choice' or 'pick_structure'"
        elif e.get("type") == "string_type" and isinstance(e.get("input"), dict):
            msg = ("expected text but YAML read a mapping: a ': ' inside the text does that; "
                   "put the text in quotes")
        elif e.get("type") in ("string_type", "list_type", "dict_type", "model_type") and e.get("input") is None:
            msg = f"{msg} (the value is empty)"
        else:
            inp = e.get("input")
            if isinstance(inp, (str, int, float, bool)) and repr(inp) not in msg and len(repr(inp)) < 60:
                msg = f"{msg} (got {inp!r})"
        out.append(ScenarioIssue(name, line, col, format_path(shown), msg))
    # one message per place and text
    seen, uniq = set(), []
    for i in out:
        k = (i.line, i.column, i.path, i.message)
        if k not in seen:
            seen.add(k)
            uniq.append(i)
    return uniq


def fields_at(loc: tuple) -> set[str] | None:
    """Field names of the schema model at ``loc`` (for "did you mean"), or None."""
    import types
    import typing

    from pydantic import BaseModel

    def unwrap(tp):
        while True:
            origin = typing.get_origin(tp)
            if origin is typing.Annotated:
                tp = typing.get_args(tp)[0]
            elif origin in (typing.Union, types.UnionType):
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                if len(args) == 1:
                    tp = args[0]
                else:
                    return args
            else:
                return tp

    cur: Any = Scenario
    for part in loc:
        cur = unwrap(cur)
        if isinstance(cur, list):  # a union: pick the branch by its tag name
            match = [a for a in cur if isinstance(a, type) and issubclass(a, BaseModel)
                     and "type" in a.model_fields and part in typing.get_args(a.model_fields["type"].annotation)]
            if not match:
                return None
            cur = match[0]
            continue
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            if part not in cur.model_fields:
                return None
            cur = cur.model_fields[part].annotation
        elif typing.get_origin(cur) in (list, tuple) and isinstance(part, int):
            cur = typing.get_args(cur)[0]
        else:
            return None
    cur = unwrap(cur)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return set(cur.model_fields)
    return None


def _walk(doc, loc):
    node = doc
    for part in loc:
        if isinstance(node, CommentedMap) and not isinstance(part, int) and part in node:
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
    return node, None, None


def parse_scenario(doc: CommentedMap, name: str = "<scenario>") -> Scenario:
    """Validate a round-trip document against the schema (raises ScenarioError)."""
    try:
        data = _plain(doc, set())
    except _Unsafe as u:
        parent, key = u.node
        line, col = _position_of(parent, key)
        path = ()
        raise ScenarioError([ScenarioIssue(name, line, col, format_path(path), u.msg)]) from None
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_pydantic_issues(name, doc, err)) from None
    except RecursionError:
        raise ScenarioError([ScenarioIssue(name, 0, 0, "", "document is nested too deeply")]) from None
    from .roundtrip import snapshot

    sc._document = doc
    sc._baseline = snapshot(sc)
    return sc


def check_files(sc: Scenario, doc: CommentedMap, path: Path) -> list[ScenarioIssue]:
    """Files the scenario names must exist and stay inside its folder."""
    folder = path.resolve().parent
    issues = []
    refs: list[tuple[tuple, str]] = [(("patient", "images", i), p) for i, p in enumerate(sc.patient.images)]
    refs += [(("quiz", i, "image"), q.image) for i, q in enumerate(sc.quiz) if q.image]
    for loc, ref in refs:
        line, col, shown = node_position(doc, loc)
        p = Path(ref)
        target = (folder / p).resolve()
        if p.is_absolute() or not target.is_relative_to(folder):
            issues.append(ScenarioIssue(str(path), line, col, format_path(shown),
                                        f"file {ref!r} must be inside the scenario's folder (a relative path without '..')"))
        elif not target.is_file():
            issues.append(ScenarioIssue(str(path), line, col, format_path(shown), f"file {ref!r} does not exist beside the scenario"))
    return issues


def load_document_and_scenario(path: str | Path, text: str | None = None) -> Scenario:
    """Schema-only load (no atlas). Raises ScenarioError listing every problem."""
    path = Path(path)
    doc = read_document(path, text)
    sc = parse_scenario(doc, str(path))
    sc._path = path
    if text is None:
        issues = check_files(sc, doc, path)
        if issues:
            raise ScenarioError(issues)
    return sc


def save_document(doc: CommentedMap, path: str | Path, backup: bool = True) -> Path:
    """Write a round-trip document back (comments and order kept), atomically; a file it
    replaces is kept as ``NAME.bak`` when ``backup``."""
    from .roundtrip import write_text_safely

    return write_text_safely(path, dump_document(doc), backup)


def dump_document(doc: CommentedMap) -> str:
    """The document as YAML text, in the indentation style it was read with."""
    buf = io.StringIO()
    _yaml(getattr(doc, "_imssim_indent", DEFAULT_INDENT)).dump(doc, buf)
    return buf.getvalue()
