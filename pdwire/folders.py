"""Folders the hub's side and the workers' side must find alike.

Workers inherit the hub's environment, so reading the same variables here gives both sides the
same answer (the hub's ``pdbridge models fetch`` writes where a worker's ``load NAME`` looks).
"""
from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "PDBRIDGE_MODELS"


def models_folder() -> Path:
    """Where fetched checkpoints live: one entry (a folder, or a file with its suffix) per short name:
    ``$PDBRIDGE_MODELS``, else ``$XDG_DATA_HOME/pdbridge/models`` (``~/.local/share/pdbridge/models``)."""
    explicit = os.environ.get(MODELS_ENV)
    if explicit:
        return Path(os.path.expanduser(explicit))
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "pdbridge" / "models"
