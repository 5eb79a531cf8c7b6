"""Course-style message arguments: positional atoms, ``--key value`` options and envelopes.

Pd sends a message as a list of atoms (floats and symbols). The course's patches used
``generate --dur 4 --temp 0.8 --out sound1 --temp Env([0.7\\,1.05]\\,[4]\\,[-2]) --out sound2``:
options may repeat (their order matters: the n-th ``--temp`` goes with the n-th ``--out``), values may
be numbers, symbols or envelopes, and an option may take several values (``--bias 0 0.5``). This
module turns atoms into that structure and gives errors a student can act on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar, Union

from pdwire.specs import split_arguments

from .envelope import Env, EnvelopeError
from .errors import PdError

Atom = Union[str, float]
Value = Union[str, float, Env]
T = TypeVar("T")

_MISSING = object()


SAMPLE_RATES = (1000, 384000)
"""The one range of sample rates every message accepts (``--sr``, ``--out_sr``, ...)."""


def join_envelopes(atoms: Iterable[Atom]) -> list[Value]:
    """Turn ``Env(...)`` symbols into :class:`Env`, joining atoms split by spaces inside the parentheses."""
    out: list[Value] = []
    pending: list[str] = []
    for atom in atoms:
        if pending:
            pending.append(atom if isinstance(atom, str) else f"{atom:.9g}")
        elif isinstance(atom, str) and atom.startswith("Env("):
            pending = [atom]
        else:
            out.append(atom)
            continue
        text = " ".join(pending)
        if text.count("(") <= text.count(")"):
            out.append(_parse_env(text))
            pending = []
    if pending:
        raise PdError(
            f"unfinished envelope {' '.join(pending)!r}: in a Pd message box write the commas as \\, "
            "for example Env([0.7\\,1.05]\\,[4]\\,[-2])")
    return out


def _parse_env(text: str) -> Env:
    try:
        return Env.parse(text)
    except EnvelopeError as exc:
        raise PdError(str(exc)) from exc


@dataclass
class Options:
    """Positional values, then ``--key value...`` occurrences in the order they were given."""

    positional: list[Value] = field(default_factory=list)
    occurrences: list[tuple[str, list[Value]]] = field(default_factory=list)

    @classmethod
    def parse(cls, atoms: Iterable[Atom], known: Iterable[str] | None = None) -> "Options":
        """Split atoms into positional values and options; reject keys not in ``known`` (if given)."""
        positional, occurrences = split_arguments(join_envelopes(atoms))
        opts = cls(positional, occurrences)
        if known is not None:
            allowed = set(known)
            unknown = [k for k, _ in opts.occurrences if k not in allowed]
            if unknown:
                listing = ", ".join("--" + k for k in sorted(allowed)) or "none"
                raise PdError(f"unknown option --{unknown[0]} (known options: {listing})")
        return opts

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.occurrences)

    def values(self, key: str) -> list[Value]:
        """All values of every occurrence of ``key``, flattened in order."""
        return [v for k, vs in self.occurrences if k == key for v in vs]

    def get_all(self, key: str, kind: Callable[..., T] = lambda v, _name: v) -> list[T]:  # type: ignore[assignment]
        """One value per occurrence of ``key`` (e.g. each ``--out``), converted with ``kind``."""
        result = []
        for k, vs in self.occurrences:
            if k == key:
                result.append(convert(_single(key, vs), kind, "--" + key))
        return result

    def get(self, key: str, kind: Callable[..., T], default: Any = _MISSING) -> T:
        """The value of an option given at most once; ``default`` when absent."""
        found = [vs for k, vs in self.occurrences if k == key]
        if not found:
            if default is _MISSING:
                raise PdError(f"missing option --{key}")
            return default
        if len(found) > 1:
            raise PdError(f"--{key} was given {len(found)} times; give it once")
        return convert(_single(key, found[0]), kind, "--" + key)

    def require(self, key: str, kind: Callable[..., T]) -> T:
        """Like :meth:`get` with no default: a clear error names the missing option."""
        return self.get(key, kind)


def _single(key: str, values: list[Value]) -> Value:
    if len(values) != 1:
        raise PdError(f"--{key} takes one value, got {len(values)}")
    return values[0]


def convert(value: Value, kind: Callable[..., T], what: str) -> T:
    """Convert ``value`` with one of the converters below (or a plain type: int, float, str)."""
    converter = _TYPES.get(kind, kind)  # type: ignore[arg-type]
    return converter(value, what)


def symbol(value: Value, what: str) -> str:
    """A symbol; a number is accepted and written as Pd would (a folder called 2024 is fine)."""
    if isinstance(value, Env):
        raise PdError(f"{what} must be a name, not an envelope")
    if isinstance(value, float):
        return f"{value:g}"
    return value


def number(value: Value, what: str) -> float:
    """A finite number (an int given as a default counts too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, float):
        raise PdError(f"{what} must be a number, got {value}")
    if not math.isfinite(value):
        raise PdError(f"{what} must be a finite number, got {value}")
    return value


def integer(value: Value, what: str) -> int:
    x = number(value, what)
    if x != int(x):
        raise PdError(f"{what} must be a whole number, got {x:g}")
    return int(x)


def sample_rate(value: Value, what: str) -> int:
    """A sample rate in Hz, a whole number within :data:`SAMPLE_RATES`."""
    rate = round(number(value, what))
    low, high = SAMPLE_RATES
    if not low <= rate <= high:
        raise PdError(f"{what} must be a sample rate between {low} and {high}, got {number(value, what):g}")
    return rate


def number_or_env(value: Value, what: str) -> Union[float, Env]:
    """A temperature-like value: a number or an ``Env(...)``."""
    return value if isinstance(value, Env) else number(value, what)


_TYPES: dict[Any, Callable[[Value, str], Any]] = {str: symbol, float: number, int: integer}
