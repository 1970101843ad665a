"""Sentences a student understands: danger, tightness, technique (shared by every view)."""

from __future__ import annotations

DANGER_TEXT = {
    "pneumothorax": "the needle went through the pleura into the lung: risk of pneumothorax.",
    "cord injury": "the needle entered the spinal canal: risk of spinal cord injury.",
    "vascular injury": "the needle entered a major blood vessel.",
    "nerve injury": "the needle entered a nerve: risk of nerve injury.",
    "organ puncture": "the needle punctured an organ.",
}


def danger_text(harm: str) -> str:
    """What entering a danger structure with this harm means."""
    return DANGER_TEXT.get(harm, f"the needle entered a danger structure ({harm}).")


#: (lowest supersensitivity, word) from the top: how tight a muscle is, in words
TIGHTNESS = ((0.75, "marked"), (0.45, "moderate"), (0.2, "mild"), (0.0, "eased"))


def tightness(s: float) -> str:
    """A muscle's supersensitivity (0..1) as a word: marked, moderate, mild, eased."""
    for lo, word in TIGHTNESS:
        if s >= lo:
            return word
    return TIGHTNESS[-1][1]


def tightness_change(start: float, end: float) -> str:
    """'tightness eased: marked -> moderate' (or 'unchanged: moderate')."""
    a, b = tightness(start), tightness(end)
    if a == b:
        return f"tightness {'eased a little' if end < start - 0.02 else 'unchanged'}: {a}"
    verb = "eased" if end < start else "rose"
    return f"tightness {verb}: {a} -> {b}"
