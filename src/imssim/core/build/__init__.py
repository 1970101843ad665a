"""Builders that turn open anatomy sources into an :class:`imssim.core.atlas.Atlas`."""
