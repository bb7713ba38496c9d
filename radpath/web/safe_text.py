"""User-supplied text made safe to echo: no control or invisible format characters.

HTML escaping (the templates' autoescape) stops markup, but not Unicode's invisible characters: a
file name with U+202E (right-to-left override) reverses the rest of the line it is shown in, so
`x<U+202E>zg.iin.csv` reads as `xvsc.nii.gz`; zero-width and other format characters (category
Cf), line and paragraph separators (Zl, Zp) and control characters (Cc) hide or reorder text the
same way. They are removed wherever such text is kept or shown; nothing legitimate in a file name
or a form value needs them.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
"""Control, format (bidi controls, zero-width, BOM, soft hyphen), surrogate, private-use,
unassigned, line and paragraph separators."""


def has_invisible(text: str) -> bool:
    return any(unicodedata.category(ch) in _INVISIBLE for ch in text)


def visible_text(text: str) -> str:
    """`text` in NFC without invisible or direction-changing characters (see the module docstring)."""
    text = unicodedata.normalize("NFC", str(text))
    return "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)
