"""Training over time: the progress store and its reports (docs/progress.md).

GUI-free; SQLAlchemy, Alembic and matplotlib are imported only when used.
"""

from .record import SessionRecord, file_sha256, mistakes_of, record_from_report
from .saving import Saved, course_state_for, save_finished
from .store import (ProgressError, ProgressStore, ProgressUnavailable, configured_url, data_dir, mask_url,
                    open_store, pending_dir)

__all__ = ["SessionRecord", "ProgressStore", "ProgressError", "ProgressUnavailable", "configured_url", "data_dir",
           "file_sha256", "mask_url", "mistakes_of", "open_store", "pending_dir", "record_from_report",
           "Saved", "course_state_for", "save_finished"]
