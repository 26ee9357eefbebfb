"""backpack: runtime helpers for Panorama application code (filled in by a later issue)."""

__version__ = "0.1.0"
