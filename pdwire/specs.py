"""What a message declares about the Pd arrays it touches, read the same way by hub and worker.

The hub keeps the requests of one Pd in order — a request sees every array as left by the requests
sent before it — without making unrelated work wait. For that it must know, before a request runs,
which arrays it may read and which it may write. Each message declares both with a short spec over
its arguments; the hub evaluates it to order requests and to have Pd write the inputs while the
request travels, and the worker evaluates it to refuse a handler that strays from its declaration
(which would break the ordering silently). Terms, separated by spaces:

    "0"        the first positional argument (positional: the atoms before the first --option)
    "1:"       positional arguments in Python slice syntax ("0:2", "0::3", "1:")
    "--out"    the value of every --out option
    "1-*"      with -* after any term: the arrays named <that value>-<anything>
               (RAVE's latent arrays prefix-0, prefix-1, ...)
    "*"        any array: for a message whose arrays cannot be named from its arguments

An empty spec (the default) means the message touches no arrays. A number standing where a name
is expected names the array Pd would: ``2024`` is array "2024".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

DEFAULT_TIMEOUT_S = 300.0
"""A message's timeout unless it declares one (hub and worker agree on it)."""


class SpecError(ValueError):
    """A declaration that does not follow the grammar above (a worker bug, found at import)."""


def is_option_key(atom: Any) -> bool:
    """``--name`` (a symbol); ``--`` alone and negative numbers are not keys."""
    if not isinstance(atom, str) or not atom.startswith("--") or len(atom) <= 2:
        return False
    try:
        float(atom[2:])
    except ValueError:
        return True
    return False


def split_arguments(atoms: Sequence[Any]) -> tuple[list[Any], list[tuple[str, list[Any]]]]:
    """Positional atoms (those before the first ``--key``), then each ``--key`` with its values.

    A bare ``--`` only separates (the course wrote ``load -- --num_seqs 2``).
    """
    positional: list[Any] = []
    options: list[tuple[str, list[Any]]] = []
    for atom in atoms:
        if atom == "--":
            continue
        if is_option_key(atom):
            options.append((atom[2:], []))
        elif options:
            options[-1][1].append(atom)
        else:
            positional.append(atom)
    return positional, options


def array_name(atom: Any) -> Optional[str]:
    """The array an atom names, as Pd would print it; None for atoms that cannot be names."""
    if isinstance(atom, str):
        return atom or None
    if isinstance(atom, (int, float)) and not isinstance(atom, bool) and math.isfinite(atom):
        return f"{atom:g}"
    return None


@dataclass(frozen=True)
class ArraySet:
    """Arrays a request may touch: exact names, name families (``prefix-*``), or any array."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    any: bool = False

    def covers(self, name: str) -> bool:
        return self.any or name in self.exact or any(name.startswith(p) for p in self.prefixes)

    def __bool__(self) -> bool:
        return self.any or bool(self.exact) or bool(self.prefixes)

    def describe(self) -> str:
        if self.any:
            return "any array"
        return " ".join(sorted(self.exact) + [p + "*" for p in self.prefixes]) or "no arrays"


ANY = ArraySet(any=True)
NONE = ArraySet()


@dataclass(frozen=True)
class _Term:
    index: Optional[slice]
    option: Optional[str]
    family: bool


@dataclass(frozen=True)
class ArraySpec:
    """A parsed declaration; :meth:`select` applies it to a request's atoms."""

    text: str
    terms: tuple[_Term, ...]
    any: bool

    @classmethod
    def parse(cls, text: Optional[str]) -> "ArraySpec":
        text = (text or "").strip()
        terms: list[_Term] = []
        anything = False
        for word in text.split():
            if word == "*":
                anything = True
                continue
            family = word.endswith("-*")
            core = word[:-2] if family else word
            if core.startswith("--") and len(core) > 2:
                terms.append(_Term(None, core[2:], family))
            else:
                terms.append(_Term(_parse_index(core, text), None, family))
        return cls(text, tuple(terms), anything)

    def select(self, atoms: Sequence[Any]) -> ArraySet:
        """The arrays this spec names in ``atoms`` (with ``*``: those, which the hub can fetch
        ahead, and any other)."""
        if not self.terms:
            return ANY if self.any else NONE
        positional, options = split_arguments(atoms)
        exact: set[str] = set()
        prefixes: list[str] = []
        for term in self.terms:
            if term.index is not None:
                values: Iterable[Any] = positional[term.index]
            else:
                values = [v for key, vs in options if key == term.option for v in vs]
            for value in values:
                name = array_name(value)
                if name is None:
                    continue
                if term.family:
                    prefixes.append(name + "-")
                else:
                    exact.add(name)
        return ArraySet(frozenset(exact), tuple(dict.fromkeys(prefixes)), self.any)


def _parse_index(word: str, text: str) -> slice:
    parts = word.split(":")
    try:
        if len(parts) == 1:
            i = int(parts[0])
            return slice(i, i + 1 if i != -1 else None)
        if len(parts) > 3:
            raise ValueError
        start, stop, *step = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise SpecError(f"array declaration {text!r}: {word!r} is not an index, a slice, --option, -* or *") from None
    if step and step[0] is not None and step[0] <= 0:
        raise SpecError(f"array declaration {text!r}: the step must be positive")
    return slice(start, stop, step[0] if step else None)
