"""Where rtmw-edge keeps what it downloads or builds once: checkpoints, calibration sets."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RTMW_EDGE_CACHE"


def cache_dir() -> Path:
    """$RTMW_EDGE_CACHE, else ~/.cache/rtmw-edge."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rtmw-edge"
