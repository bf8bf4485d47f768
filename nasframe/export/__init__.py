"""Arch -> standalone torch module with inherited weights, saved for use without nasframe."""

from nasframe.export.extract import extract
from nasframe.export.load import load_export
from nasframe.export.save import ExportPaths, save_export

__all__ = ["ExportPaths", "extract", "load_export", "save_export"]
