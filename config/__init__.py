"""Settings and logging set-up: the leaves of the dependency graph (they import nothing of ours)."""

from config.logging import configure_logging
from config.settings import SettingMissingError, Settings

__all__ = ["SettingMissingError", "Settings", "configure_logging"]
