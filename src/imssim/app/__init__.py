"""The application layer: what the trainee's window does, as plain calls and typed events.

``imssim.app.controller.Controller`` turns the view's input (clicks, keys, wheel) into
calls on the core's :class:`~imssim.core.training.session.Session` (the one owner of the attempt's
state) and tells the view what changed with the event dataclasses of ``imssim.app.events``.
It keeps only view state (aim angles, needle glyphs, selection, tool). No Qt here: the Qt
window (``imssim.qt``) is one view over it, tests drive it directly. See docs/architecture.md.
"""
