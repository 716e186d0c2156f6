"""Files the worker serves on its web port."""
