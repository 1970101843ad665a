"""Training over time: the progress store and its reports (docs/progress.md).

GUI-free; SQLAlchemy, Alembic and matplotlib are imported only when used.
"""

from .record import SessionRecord, file_sha256, mistakes_of, record_from_report
from .saving import Saved, course_state_for, last_course_case, save_finished
from .store import (ProgressError, ProgressStore, ProgressUnavailable, configured_url, data_dir, mask_url,
                    open_store, pending_dir, pending_for, remember_trainee, remembered_trainee)

__all__ = ["SessionRecord", "ProgressStore", "ProgressError", "ProgressUnavailable", "configured_url", "data_dir",
           "file_sha256", "mask_url", "mistakes_of", "open_store", "pending_dir", "pending_for", "record_from_report",
           "remember_trainee", "remembered_trainee", "Saved", "course_state_for", "last_course_case", "save_finished"]
