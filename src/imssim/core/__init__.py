"""The GUI-free core of imssim.

Nothing under ``imssim.core`` may import vtk, pyvista or Qt (a test enforces this).
"""
