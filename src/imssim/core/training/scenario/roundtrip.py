"""Saving an edited scenario back into the author's file: only what changed is written.

An editor changes the model (``scenario.model_copy(update=...)``); :func:`apply_changes`
writes the difference between the scenario as loaded and as edited into a copy of its
ruamel round-trip document, so every comment, the key order, quoting and the names the
author wrote (``right gluteus medius`` rather than the atlas id) stay where nothing
changed. :func:`write_text_safely` keeps the file it replaces as ``NAME.bak``.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

#: Suffix of the copy kept of a file before it is overwritten.
BACKUP_SUFFIX = ".bak"


def snapshot(sc) -> dict:
    """The scenario's content as plain data, defaults left out (what :func:`apply_changes`
    compares: a field set back to its default is taken out of the file, and new items are
    written without their defaults)."""
    return sc.model_dump(mode="json", exclude_defaults=True)


def to_nodes(value: Any) -> Any:
    """Plain data as round-trip nodes (block style)."""
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            if v is not None:
                m[k] = to_nodes(v)
        return m
    if isinstance(value, (list, tuple)):
        s = CommentedSeq(to_nodes(v) for v in value)
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            s.fa.set_flow_style()  # [25, 40]: short lists of scalars on one line, as authors write them
        return s
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)  # 40, not 40.0, as authors write it (the schema reads it back as a float)
    return value


def _set(node: Any, key: Any, old_written: Any, new: Any) -> None:
    """Write ``new`` at ``node[key]``, in the shape the author used where it allows."""
    if isinstance(new, list) and len(new) == 1 and not isinstance(old_written, (list, CommentedSeq)) \
            and old_written is not None and not isinstance(new[0], (dict, list)):
        node[key] = new[0]  # `answer: 2`, `segments: S1`: a single value stays a single value
        return
    node[key] = to_nodes(new)


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _update(node: Any, key: Any, old: Any, new: Any) -> None:
    """``node[key]`` (a mapping key or a list index) from ``old`` to ``new``."""
    cur = node[key]
    if isinstance(cur, (CommentedMap, CommentedSeq)) and isinstance(new, (dict, list)) and isinstance(old, type(new)):
        if _apply(cur, old, new):
            return
    _set(node, key, cur, new)


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """(the node, the key or index) holding the comment after ``node``'s last line (block
    style), or None (a scalar, an empty or flow-style collection)."""
    if isinstance(node, (CommentedMap, CommentedSeq)) and len(node) and not node.fa.flow_style():
        key = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
        deeper = _last_slot(node[key])
        return deeper if deeper is not None else (node, key)
    return None


def _move_trailing_blank_lines(old_last: Any, new_last: Any) -> None:
    """Blank lines after a list's last item (the gap before the next section) follow an item
    appended after it, so the new item is not cut off from the list by them."""
    src, dst = _last_slot(old_last), _last_slot(new_last)
    if src is None or dst is None:
        return
    node, key = src
    slots = node.ca.items.get(key)
    pos = 0 if isinstance(node, CommentedSeq) else 2
    tok = slots[pos] if slots and len(slots) > pos else None
    value = getattr(tok, "value", None)
    if not isinstance(value, str) or not value.endswith("\n\n"):
        return
    body = value.rstrip("\n")
    blank = value[len(body):]
    moved = copy.copy(tok)
    if body.strip():  # an end-of-line comment stays where it is, without the blank lines
        tok.value = body + "\n"
        moved.value = "\n" + blank[1:]
    else:
        slots[pos] = None
        if not any(slots):
            del node.ca.items[key]
        moved.value = blank
    dnode, dkey = dst
    dpos = 0 if isinstance(dnode, CommentedSeq) else 2
    dslots = dnode.ca.items.setdefault(dkey, [None, None, None, None])
    if dslots[dpos] is None:
        dslots[dpos] = moved


def _apply(node: Any, before: Any, after: Any) -> bool:
    """Write the changes into ``node`` in place; False when its shape does not match the
    data (the caller then writes the value whole)."""
    if isinstance(node, CommentedMap) and isinstance(before, dict) and isinstance(after, dict):
        for key, new in after.items():
            old = before.get(key)
            if old == new:
                continue
            if new is None:
                node.pop(key, None)
            elif key in node:
                _update(node, key, old, new)
            else:
                node[key] = to_nodes(new)
        for key in before:
            if key not in after:
                node.pop(key, None)  # back to its default (or left out)
        return True
    if isinstance(node, CommentedSeq) and isinstance(before, list) and isinstance(after, list) \
            and len(node) == len(before):
        # items kept, removed and added are matched (difflib), so each keeps its comments
        ops = difflib.SequenceMatcher(None, [_key(v) for v in before], [_key(v) for v in after],
                                      autojunk=False).get_opcodes()
        shift = 0
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                continue
            pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
            for k in range(pairs):
                _update(node, i1 + shift + k, before[i1 + k], after[j1 + k])
            for _ in range(i2 - i1 - pairs):  # removed
                del node[i1 + shift + pairs]
            at_end = i2 + shift == len(node)
            for k in range(j2 - j1 - pairs):  # added
                node.insert(i1 + shift + pairs + k, to_nodes(after[j1 + pairs + k]))
            if at_end and j2 - j1 > pairs and len(node) > j2 - j1 - pairs:
                _move_trailing_blank_lines(node[len(node) - 1 - (j2 - j1 - pairs)], node[len(node) - 1])
            shift += (j2 - j1) - (i2 - i1)
        return True
    return False


def apply_changes(doc: CommentedMap, before: dict, after: dict) -> CommentedMap:
    """A copy of ``doc`` with the changes from ``before`` to ``after`` (plain data, see
    :func:`snapshot`) written in; the rest of the document is left as it was."""
    out = copy.deepcopy(doc)
    if not _apply(out, before, after):
        raise ValueError("the document is not a scenario mapping")
    return out


def write_text_safely(path: str | Path, text: str, backup: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically; an existing file with other content is first
    copied to ``NAME.bak`` (one backup, replaced each time)."""
    path = Path(path)
    if backup and path.is_file():
        old = path.read_bytes()
        if old != text.encode("utf-8"):
            bak = path.with_name(path.name + BACKUP_SUFFIX)
            shutil.copy2(path, bak)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
