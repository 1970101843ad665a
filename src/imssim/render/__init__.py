"""pyvista scenes built from core state (works with an off-screen plotter)."""
