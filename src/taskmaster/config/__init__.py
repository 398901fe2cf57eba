"""One settings tree, read once at start-up and passed down; nothing else reads the environment."""

from taskmaster.config.loading import ConfigurationError, load_settings
from taskmaster.config.settings import Settings

__all__ = ["ConfigurationError", "Settings", "load_settings"]
