"""The trainee's window (the only package that imports PySide6 / pyvistaqt)."""
