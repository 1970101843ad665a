"""Builders that turn open anatomy sources into an :class:`imssim.core.model.atlas.Atlas`."""
