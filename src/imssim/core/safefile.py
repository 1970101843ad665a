"""One safe way to read the files a user hands imssim (docs/safety.md).

Every YAML or JSON file imssim reads from a user (scenarios, placements, recordings,
import manifests, settings, an atlas cache's header) goes through here:

* a size cap, checked before the file is read;
* YAML: no anchors or aliases (``&x`` / ``*x``, scalar ones too, so a "billion laughs"
  file cannot expand), no tags (``!!python/object``, ``!!str``, ``!foo``), no complex
  keys; checked on the parser's event stream *before* anything is built;
* YAML and JSON: a cap on nesting depth, checked before the (recursive) builders run,
  so ``[[[[...`` 100,000 deep is refused at once instead of ending in a RecursionError;
* JSON: no ``NaN``/``Infinity``;
* one clear error, :class:`SafeFileError`, whose message is one line naming the file,
  the line and the field: ``placements.yaml:3: needles[0].label: YAML aliases ...``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

#: Deepest nesting accepted in any user file (imssim's formats need fewer than 10).
MAX_DEPTH = 64
#: Default size cap for a user file.
MAX_BYTES = 16 * 1024 * 1024


class SafeFileError(ValueError):
    """A user file that is refused or unreadable; ``str()`` is one line."""

    def __init__(self, path, line: int | None, field: str, message: str):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = f"{self.path}:{line}" if line else self.path
        msg = " ".join(str(message).split())
        super().__init__(f"{where}: {field}: {msg}" if field else f"{where}: {msg}")


def read_text(path, max_bytes: int = MAX_BYTES) -> str:
    """The file's UTF-8 text, refusing files over ``max_bytes`` before reading them."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SafeFileError(path, None, "", f"file is {size} bytes, over the {max_bytes}-byte limit")
        with open(path, "rb") as f:
            # read(n) allocates n bytes up front: ask for the file's size (+1 to see growth),
            # not the cap, or every small file would cost max_bytes (256 MiB for a recording)
            data = f.read(min(size, max_bytes) + 1)
            if len(data) > size:  # grew while we looked: read on to the cap
                data += f.read(max_bytes + 1 - len(data))
    except OSError as e:
        raise SafeFileError(path, None, "", f"cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:  # grew while we looked
        raise SafeFileError(path, None, "", f"file is over the {max_bytes}-byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SafeFileError(path, line, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None


# ----------------------------------------------------------------------------- JSON
_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def json_depth_check(text: str, name, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``max_depth`` (without parsing it)."""
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot be that deep
    bare = _JSON_STRING.sub('""', text).encode("utf-8", "replace")
    b = np.frombuffer(bare, np.uint8)
    step = ((b == 91) | (b == 123)).astype(np.int32) - ((b == 93) | (b == 125)).astype(np.int32)
    depth = np.cumsum(step)
    if len(depth) and depth.max() > max_depth:
        k = int(np.argmax(depth > max_depth))
        line = bare[:k].count(b"\n") + 1
        raise SafeFileError(name, line, "", f"nested more than {max_depth} levels deep")


def _no_constant(c):
    raise ValueError(f"{c} is not allowed (numbers must be finite)")


def loads_json(text: str, name="<json>", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text safely (depth cap, finite numbers); raises SafeFileError."""
    json_depth_check(text, name, max_depth)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise SafeFileError(name, e.lineno, "", f"not valid JSON: {e.msg} (column {e.colno})") from None
    except (ValueError, RecursionError) as e:
        raise SafeFileError(name, None, "", f"not valid JSON: {e}") from None


# ----------------------------------------------------------------------------- YAML
def _path_text(stack) -> str:
    out = ""
    for fr in stack:
        if fr["map"]:
            if fr["key"] is None:
                continue
            k = str(fr["key"])
            out += ("." if out else "") + k if re.match(r"^[A-Za-z_][\w-]*$", k) else f"[{k!r}]"
        else:
            out += f"[{fr['i']}]"
    return out


def yaml_safety_check(text: str, name, max_depth: int = MAX_DEPTH, what: str = "", syntax: bool = True) -> None:
    """Walk the YAML parser's events (nothing is built) and refuse anchors, aliases, tags,
    merge and complex keys, and nesting deeper than ``max_depth``. Raises SafeFileError.
    With ``syntax=False`` a syntax error ends the check quietly (the caller's own loader
    reports it, with its column)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.events import (AliasEvent, CollectionEndEvent, MappingStartEvent, ScalarEvent,
                                    SequenceStartEvent)

    suffix = f" in {what}" if what else ""
    stack: list[dict] = []

    def after_value():
        if stack:
            top = stack[-1]
            if top["map"]:
                top["want_key"] = True
            else:
                top["i"] += 1

    def fail(ev, msg):
        raise SafeFileError(name, ev.start_mark.line + 1 if ev.start_mark else None, _path_text(stack), msg)

    anchored = None  # (event, path) of the first anchor: refused at the end if nothing worse is found
    try:
        for ev in YAML(typ="safe", pure=True).parse(io.StringIO(text)):
            if isinstance(ev, AliasEvent):
                fail(ev, f"YAML anchors and aliases (&name / *name) are not allowed{suffix} (alias *{ev.anchor})")
            if getattr(ev, "anchor", None) and anchored is None:
                anchored = (ev, list(map(dict, stack)))
            tag = getattr(ev, "tag", None)
            tag = getattr(tag, "value", tag)
            if tag:
                fail(ev, f"YAML tag {tag!r} is not allowed{suffix}")
            if isinstance(ev, ScalarEvent):
                if stack and stack[-1]["map"] and stack[-1]["want_key"]:
                    if ev.value == "<<" and ev.style is None:
                        fail(ev, f"YAML merge keys (<<) are not allowed{suffix}")
                    stack[-1]["key"], stack[-1]["want_key"] = ev.value, False
                else:
                    after_value()
            elif isinstance(ev, (MappingStartEvent, SequenceStartEvent)):
                if stack and stack[-1]["map"] and stack[-1]["want_key"]:
                    fail(ev, "a key must be plain text, not a list or mapping")
                stack.append({"map": isinstance(ev, MappingStartEvent), "i": 0, "key": None, "want_key": True})
                if len(stack) > max_depth:
                    fail(ev, f"nested more than {max_depth} levels deep")
            elif isinstance(ev, CollectionEndEvent):
                stack.pop()
                after_value()
        if anchored is not None:
            ev, stack[:] = anchored
            fail(ev, f"YAML anchors and aliases (&name / *name) are not allowed{suffix} (anchor &{ev.anchor})")
    except MarkedYAMLError as e:
        if not syntax:
            return
        mark = e.problem_mark or e.context_mark
        msg = " ".join(x for x in (e.context, e.problem) if x) or "syntax error"
        raise SafeFileError(name, mark.line + 1 if mark else None, _path_text(stack), f"YAML syntax: {msg}") from None
    except (YAMLError, RecursionError, ValueError, TypeError) as e:
        if isinstance(e, SafeFileError):
            raise
        if not syntax:
            return
        raise SafeFileError(name, None, _path_text(stack), f"YAML syntax: {e}") from None


def loads_yaml(text: str, name="<yaml>", max_depth: int = MAX_DEPTH, what: str = "") -> Any:
    """Parse YAML text to plain data, safely (see the module docstring)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml_safety_check(text, name, max_depth, what)
    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(text))
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = " ".join(x for x in (e.context, e.problem) if x) or "syntax error"
        raise SafeFileError(name, mark.line + 1 if mark else None, "", f"YAML: {msg}") from None
    except (YAMLError, RecursionError, ValueError, TypeError) as e:
        raise SafeFileError(name, None, "", f"YAML: {e}") from None


def read_yaml(path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, what: str = "") -> Any:
    return loads_yaml(read_text(path, max_bytes), str(path), max_depth, what)


def read_json(path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    return loads_json(read_text(path, max_bytes), str(path), max_depth)


def read_data(path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH, what: str = "") -> Any:
    """A YAML or JSON file (JSON when it ends in ``.json`` or starts with ``{`` or ``[``)."""
    text = read_text(path, max_bytes)
    if Path(path).suffix.lower() == ".json" or text.lstrip()[:1] in ("{", "["):
        return loads_json(text, str(path), max_depth)
    return loads_yaml(text, str(path), max_depth, what)
