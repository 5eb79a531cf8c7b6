"""How a request can end, each worded once: what the object's right outlet and Pd's console say.

Every request ends exactly one way. *done* sends its result lines out of the left outlet (after its
arrays have landed); every other ending sends one line out of the right outlet, printed in the
console too: ``cancelled <selector>``, or ``error <selector>: <what happened>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .fudi import Atom


def cancelled(selector: str) -> list[Atom]:
    """The user sent ``cancel`` (or the object went away)."""
    return ["cancelled", selector]


def refused(selector: str, text: str) -> str:
    """Bad input, in the worker's (or the hub's) words for the student."""
    return f"{selector}: {text}"


def failed(selector: str, ename: str, evalue: str, log: Path) -> str:
    """The model code raised an exception it did not expect: a bug to report, with its log."""
    return f"{selector}: {ename}: {evalue} (log: {log})"


def timed_out(selector: str, seconds: float, model: str, killed: bool) -> str:
    """It ran past its timeout and was stopped (the worker itself, if it did not stop when asked)."""
    if killed:
        return (f"{selector} timed out after {seconds:g} s and did not stop when asked: the {model} worker was "
                "restarted, so load your model again")
    return f"{selector} timed out after {seconds:g} s and was stopped"


def worker_died(selector: str, model: str, how: str, log: Path) -> str:
    """The worker process ended in the middle of it (a crash, the out-of-memory killer, kill -9)."""
    return (f"{selector}: the {model} worker died ({how}); it restarts on the next request, so load your model "
            f"again (log: {log})")


def not_started(selector: str, reason: str) -> str:
    """The worker could not be started (its environment is missing, or it failed at start)."""
    return f"{selector}: {reason}"


def missing_arrays(names: list[str]) -> str:
    """Arrays a request names that Pd does not have, with what to do about it. [pdbridge.conn]
    words a result array that disappeared just before landing the same way."""
    return f"array {' '.join(names)} not found: create it with [array define {names[0]}] or a table"


Ending = Union[str, list[Atom]]
