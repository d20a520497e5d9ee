"""Musical keys as class labels: the 24 major and minor keys under one spelling.

Key datasets spell keys their own way (``Eb minor``, ``D# min``, ``a:minor``, ``Bbm``);
a task with ``label_format = "key"`` reads every annotation into one of ``KEYS`` so that
the classes are the same 24 on every dataset and the MIREX weighted score
(``musicbench.protocol.metrics.mirex_key_score``) can relate any two of them.
"""

from __future__ import annotations

import re

PITCHES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = ("major", "minor")
#: the 24 class names, majors then minors, in pitch-class order
KEYS = tuple(f"{p} {m}" for m in MODES for p in PITCHES)

_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MODE_WORDS = {"": "major", "maj": "major", "major": "major", "m": "minor", "min": "minor",
               "minor": "minor"}
_PATTERN = re.compile(r"^\s*([A-Ga-g])\s*(#|♯|b|♭|-)?\s*[:_ ]?\s*([A-Za-z]*)\s*$")


def parse_key(text: str) -> tuple[int, str] | None:
    """(pitch class 0-11 of the tonic, ``major``/``minor``), or None where ``text`` names
    no single major or minor key (``x``, ``unknown``, a modal or atonal label)."""
    m = _PATTERN.match(str(text))
    if not m:
        return None
    letter, accidental, mode = m.groups()
    word = mode if mode == "m" else mode.lower()
    if word not in _MODE_WORDS:
        return None
    pitch = _NATURAL[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1, "-": -1}.get(accidental or "", 0)
    return pitch % 12, _MODE_WORDS[word]


def key_name(text: str) -> str | None:
    """``text`` spelled as one of ``KEYS``, or None where it names no single key."""
    parsed = parse_key(text)
    return None if parsed is None else f"{PITCHES[parsed[0]]} {parsed[1]}"


def is_key_set(classes: list[str] | tuple[str, ...]) -> bool:
    """Whether every class is one of the 24 keys as ``KEYS`` spells them."""
    return bool(classes) and set(classes) <= set(KEYS)


def key_relation_score(reference: str, estimate: str) -> float:
    """The MIREX weighted score of one estimate (MIREX 2005 key detection; mir_eval's
    ``key.weighted_score``): 1 for the same key, 0.5 for the key a fifth above in the same
    mode, 0.3 for the relative major or minor, 0.2 for the parallel one, else 0."""
    (rp, rm), (ep, em) = parse_key(reference), parse_key(estimate)
    up = (ep - rp) % 12
    if rm == em:
        return 1.0 if up == 0 else 0.5 if up == 7 else 0.0
    if (rm == "major" and up == 9) or (rm == "minor" and up == 3):
        return 0.3
    return 0.2 if up == 0 else 0.0
