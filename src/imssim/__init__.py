"""imssim: an interactive 3D training simulator for Intramuscular Stimulation (IMS)."""

__version__ = "0.1.0"
