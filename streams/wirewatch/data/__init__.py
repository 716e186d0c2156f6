"""Data files that ship inside the wirewatch package."""
