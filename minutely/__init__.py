"""minutely: per-second fleet metrics, rolled up per minute, kept 2 days in memory.

The public surface is listed in ``__all__``; everything else is internal.
"""

from minutely.config import Settings, load
from minutely.errors import (
    Backpressure,
    BadParameter,
    ConfigError,
    DecodeError,
    MinutelyError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from minutely.model import Partials, PointBatch

__version__ = "0.1.0"

__all__ = [
    "Backpressure",
    "BadParameter",
    "ConfigError",
    "DecodeError",
    "MinutelyError",
    "NotFound",
    "Partials",
    "PayloadTooLarge",
    "PointBatch",
    "Settings",
    "Unavailable",
    "__version__",
    "load",
]
