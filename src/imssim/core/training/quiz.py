"""Grading a quiz answer: the one rule the quiz panel and the score both use."""

from __future__ import annotations

from dataclasses import dataclass


class QuizAnswerError(ValueError):
    """An answer that cannot be an answer to this question (the message says why)."""


@dataclass(frozen=True)
class QuizResult:
    """One answered question, as the session keeps it and the window shows it."""

    index: int  # position in the scenario's quiz
    item: str  # the question's id (or its index as text)
    answer: object  # choice indices (sorted) or the structure id clicked (None: nothing)
    shown: str  # the answer in words ("L5", "Gluteus medius", "nothing")
    correct: bool
    explanation: str


def item_key(items, q) -> str:
    return str(q.id or items.index(q))


def normalise_answer(q, answer):
    """The answer as it is recorded and graded: sorted choice indices for a multiple-choice
    question; a structure name/id (or None) for a pick-structure question."""
    if q.type == "multiple_choice":
        raw = answer if isinstance(answer, (list, tuple, set)) else [answer]
        try:
            given = sorted({int(a) for a in raw if not isinstance(a, bool)})
        except (TypeError, ValueError):
            raise QuizAnswerError(f"answer {answer!r}: expected choice numbers") from None
        if not given or any(not 0 <= g < len(q.choices) for g in given):
            raise QuizAnswerError(f"answer {answer!r}: choices are 0..{len(q.choices) - 1}")
        return given
    return None if answer in (None, "") else str(answer)


def grade(q, answer, atlas) -> bool:
    """Whether ``answer`` (normalised) answers ``q``: the same sets of choices, or the
    structure clicked is one of the answers once both are resolved to atlas ids."""
    if q.type == "multiple_choice":
        return answer == sorted(q.answers)
    if answer is None:
        return False
    try:
        return atlas.get(str(answer)).id in {atlas.get(a).id for a in q.answer}
    except Exception:  # noqa: BLE001 - an unknown name is simply wrong
        return False


def shown(q, answer, atlas) -> str:
    if q.type == "multiple_choice":
        return ", ".join(q.choices[g] for g in answer)
    if answer is None:
        return "nothing"
    s = atlas.structures.get(answer)
    return s.name if s is not None else str(answer)
