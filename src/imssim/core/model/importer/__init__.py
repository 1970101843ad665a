"""Importing atlases from open anatomy meshes: manifest -> cleaned, aligned ``Atlas``.

The public entry point is :func:`import_atlas`. An imported atlas is an ordinary
:class:`~imssim.core.model.atlas.Atlas` (same ids as the built-in one where the structure is the
same, so scenarios and needle queries run on it unchanged) saved with
``store.imported_path(name)``; :func:`imssim.core.model.store.load_atlas` loads it by name.
Import is all-or-nothing for the files it imports: every file is read and checked first,
the atlas is written to a temporary file and renamed into place only when everything
succeeded. A dataset folder's files that a profile does not know are skipped and listed
(``meta["skipped_files"]``). The source frame is stated, or detected from the anatomy
(:mod:`.frame`), before anything is aligned (``meta["frame"]``).

The pipeline is in :mod:`.pipeline` (read, check, frame, align, fit report); the rest:
:mod:`.manifest`, :mod:`.readers` (and :mod:`.vtkfiles`), :mod:`.profiles`, :mod:`.frame`,
:mod:`.register`, :mod:`.segments`, :mod:`.fetch`.
"""

from __future__ import annotations

from .pipeline import (
    import_atlas,
    manifest_for_folder,
    frame_matrix,
    ImportFailed,
    ManifestError,
    MeshFileError,
    load_manifest,
    validate,
    fit_report,
)

__all__ = ["import_atlas", "manifest_for_folder", "frame_matrix", "ImportFailed", "ManifestError", "MeshFileError", "load_manifest", "validate", "fit_report"]
