"""Official checkpoints by short name: ``load all_instruments`` finds the one ``pdbridge models fetch``
put in the models folder.

A load message's argument is first a path as the student wrote it (relative to the patch, ``~``, or
absolute), as itself or with one of the worker's file suffixes (``vintage`` -> ``vintage.ts``, as nn~
allows): when that exists it always wins, so a folder of their own is never shadowed by a fetched one
of the same name. Only a bare name (no ``/``) that is not there is looked up in the models folder,
the same two ways. The folder is ``$PDBRIDGE_MODELS``, else ``$XDG_DATA_HOME/pdbridge/models``
(``~/.local/share/pdbridge/models``); workers inherit the hub's environment, so both sides agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, Union

from pdwire.folders import MODELS_ENV, models_folder

from .errors import PdError

__all__ = ["MODELS_ENV", "PathResolver", "find_checkpoint", "models_folder"]


class PathResolver(Protocol):
    """What this module needs of a request (:class:`workers.runtime.request.Request` has it)."""

    def resolve_path(self, path: Union[str, float]) -> Path: ...


def find_checkpoint(req: PathResolver, name: Union[str, float], what: str, suffixes: Sequence[str] = ()) -> Path:
    """The checkpoint ``name`` means: the path as given when it exists, else a fetched one by short
    name; a :class:`PdError` naming both places (and the fetch command) when neither exists."""
    path = req.resolve_path(name)
    text = str(name)
    places = [path.parent] if "/" in text or text.startswith("~") else [path.parent, models_folder()]
    for place in places:
        for candidate in (place / path.name, *(place / (path.name + suffix) for suffix in suffixes)):
            if candidate.exists():
                return candidate
    if len(places) == 1:
        raise PdError(f"{what} not found: {path}")
    folder = places[1]
    raise PdError(f"{what} not found: {path}, and no model called {text} in {folder} "
                  f"(pdbridge models list shows what can be fetched)")

