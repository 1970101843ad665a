"""Finding, loading, validating and saving scenario files (the logic behind ``imssim.core.training.scenario``)."""

from __future__ import annotations

from pathlib import Path

from ...model.atlas import Atlas
from .errors import ScenarioError, ScenarioIssue
from .loader import load_document_and_scenario, save_document
from .model import Scenario

#: The library scenario a bare ``imssim`` / ``imssim run`` opens.
DEFAULT_SCENARIO_ID = "l5-radiculopathy-low-back"


def library_dir() -> Path:
    from ...model.data import scenarios_dir

    return scenarios_dir()


def library() -> list[Path]:
    """The shipped scenario files, sorted by name."""
    return sorted(library_dir().glob("*.yaml"))


def default_scenario_path() -> Path:
    """The file of the default scenario (:data:`DEFAULT_SCENARIO_ID`)."""
    return library_dir() / f"{DEFAULT_SCENARIO_ID}.yaml"


def find_scenario(name: str | Path) -> Path:
    """A scenario file by path, or by library id (``l5-radiculopathy-low-back``).

    Raises :class:`ScenarioError` naming the closest library ids when nothing matches.
    """
    p = Path(name)
    if p.is_file():
        return p
    s = str(name)
    if "/" not in s and "\\" not in s:
        cand = library_dir() / (s if s.endswith(".yaml") else f"{s}.yaml")
        if cand.is_file():
            return cand
    import difflib

    ids = [f.stem for f in library()]
    close = difflib.get_close_matches(p.stem, ids, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; library scenarios: {', '.join(ids)}"
    raise ScenarioError([ScenarioIssue(s, 0, 0, "", f"no such scenario file or library id{hint}")])


def validate_file(path: str | Path, atlas: Atlas | None = None, text: str | None = None) -> list[ScenarioIssue]:
    """Every problem in a scenario file (errors and warnings); [] when it is clean.

    Without an atlas only the schema is checked; with one, names and cross-references too.
    """
    try:
        sc = load_document_and_scenario(path, text)
    except ScenarioError as e:
        return e.issues
    if atlas is None:
        return []
    from .validate import check_against_atlas

    return check_against_atlas(sc, atlas, str(path))


def load_scenario(path: str | Path | None, atlas: Atlas | None = None, text: str | None = None) -> Scenario:
    """Load and validate a scenario; raises :class:`ScenarioError` listing every error.

    ``path`` None means the default scenario (what a bare ``imssim run`` opens).

    With an ``atlas`` every structure and landmark name is checked and the returned
    scenario has them replaced by atlas ids (warnings are kept in ``scenario.warnings``).
    ``path`` may also be a library id.
    """
    if path is None:
        path = default_scenario_path()
    if text is None:
        path = find_scenario(path)
    sc = load_document_and_scenario(path, text)
    sc._warnings = []
    if atlas is None:
        return sc
    return bind_scenario(sc, atlas, str(path))


def bind_scenario(sc: Scenario, atlas: Atlas, where: str | None = None) -> Scenario:
    """A scenario loaded without an atlas, checked against ``atlas`` and with its names
    replaced by atlas ids (no second read of the file); raises :class:`ScenarioError`."""
    from .roundtrip import snapshot
    from .validate import canonicalise, check_against_atlas

    issues = check_against_atlas(sc, atlas, where or str(getattr(sc, "path", "") or sc.id))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise ScenarioError(issues)
    out = canonicalise(sc, atlas)
    out._warnings = [i for i in issues if i.severity == "warning"]
    out._baseline = snapshot(out)  # names as atlas ids: an edit compares against these
    return out


def save_scenario(scenario_or_document, path: str | Path, backup: bool = True) -> Path:
    """Write a scenario to ``path`` keeping the author's comments, key order and wording.

    A scenario loaded from a file and then edited (``model_copy(update=...)``) has only
    what changed since it was loaded written into its document (:mod:`.roundtrip`); one
    built in code is written whole; a bare round-trip document is written as it is. The
    text is checked against the schema first (a broken case is never written: raises
    :class:`ScenarioError`), and a file it replaces is kept as ``NAME.bak`` (``backup``).
    The scenario's document and baseline then follow the saved file.
    """
    from .loader import dump_document, parse_scenario, read_document
    from .roundtrip import apply_changes, snapshot, to_nodes, write_text_safely

    path = Path(path)
    sc = scenario_or_document if isinstance(scenario_or_document, Scenario) else None
    doc = sc.document if sc is not None else scenario_or_document
    if sc is None:
        return save_document(doc, path, backup)
    after = snapshot(sc)
    if doc is None:
        doc = to_nodes({"version": sc.version} | after)
    else:
        before = sc._baseline if sc._baseline is not None else snapshot(parse_scenario(doc, str(path)))
        if before != after:
            doc = apply_changes(doc, before, after)
    text = dump_document(doc)
    saved = parse_scenario(read_document(path, text), str(path))  # raises ScenarioError
    write_text_safely(path, text, backup)
    sc._document, sc._baseline, sc._path = saved.document, after, path
    return path


def scenario_json_schema() -> dict:
    """The JSON Schema of the scenario format (for editors)."""
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://imssim.invalid/scenario.schema.json"
    schema["title"] = "imssim scenario (version 1)"
    return schema
