"""``template``: deterministic narrations built from the dynamics summary, no model.

The sentence skeleton is the editable ``pattern`` (``{narration}`` = the cleaned original
narration, ``{details}`` = one clause per visible hand), e.g. ``C picks up the cup. The right
hand moves up and to the left while holding an object; the left hand stays still.``
"""
from __future__ import annotations

from ..types import CONTACT_NAMES
from .base import NarrationRequest, NarrationResult, Narrator, Validation, clean_narration, register_narrator, \
    result_from_answer

_DIRECTIONS = {
    "left": "to the left", "right": "to the right", "up": "up", "down": "down",
    "up-left": "up and to the left", "up-right": "up and to the right",
    "down-left": "down and to the left", "down-right": "down and to the right",
}


def hand_clause(side: str, h: dict) -> str:
    move = "stays still" if h["direction"] == "still" else f"moves {_DIRECTIONS.get(h['direction'], h['direction'])}"
    if h.get("size_change") == "larger":
        move += " toward the camera"
    elif h.get("size_change") == "smaller":
        move += " away from the camera"
    states = h.get("contact_states", [])
    if states and states[0] == "N" and len(states) > 1 and states[-1] != "N":
        contact = f", then makes {CONTACT_NAMES[states[-1]]}"
    elif states and states[0] != "N" and states[-1] == "N":
        contact = ", then releases its contact"
    elif h.get("holds"):
        contact = " while holding an object" if states and states[-1] == "P" else " while touching an object"
    elif states and states[-1] == "F":
        contact = " while touching a stationary object"
    else:
        contact = ""
    return f"the {side} hand {move}{contact}"


def describe(summary: dict) -> str:
    hands = summary.get("hands", {})
    clauses = [hand_clause(s, hands[s]) for s in ("right", "left") if s in hands]
    if not clauses:
        return "No hands are visible."
    text = "; ".join(clauses) + "."
    return text[0].upper() + text[1:]


class TemplateNarrator(Narrator):
    name = "template"

    def __init__(self, validation: Validation = Validation(), pattern: str = "{narration}. {details}"):
        if "{details}" not in pattern:
            raise ValueError(f"narrator.pattern must contain {{details}}, got {pattern!r}")
        self.pattern = pattern
        self.validation = validation

    def narrate_batch(self, requests: list[NarrationRequest]) -> list[NarrationResult]:
        out = []
        for r in requests:
            base = clean_narration(r.narration).rstrip(". ")
            text = self.pattern.replace("{narration}", base).replace("{details}", describe(r.summary)).strip()
            out.append(result_from_answer(text.lstrip(". "), self.validation))
        return out


@register_narrator("template")
def template(validation: Validation = Validation(), **kwargs) -> Narrator:
    """Deterministic narrations from the dynamics summary (no model)."""
    return TemplateNarrator(validation=validation, **kwargs)
