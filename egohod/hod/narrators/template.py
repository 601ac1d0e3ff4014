"""``template``: deterministic narrations built from the dynamics summary, no model.

One narration per paraphrase of the original (a list-literal ``text`` keeps all of them), each a
sentence that tells what the dynamics hold: the main hand's reach, its contact changes (grasp,
release), what it does to the object while in contact and how the object moves, e.g. for
``#C C opens the microwave``::

    #C C's right hand reaches up to the microwave handle, grasps it and pulls it left; the microwave
    door swings open.

The object's name comes from the original narration (``C <verb> [particle] <object> ...``); the
part that is touched is the object itself or, for opening/closing verbs on a container, its handle.
Without hands the sentence keeps the original narration and adds the object's motion. The
skeleton is the editable ``pattern``: ``{tag}`` (the original's Ego4D tag, e.g. ``"#C "``),
``{narration}`` (the cleaned original) and ``{details}`` (the dynamics sentence, with its own
subject). ``variants`` > 1 adds differently worded narrations of the same dynamics; their words
are drawn from a generator seeded by ``seed`` and the clip key, so the output is a function of
(summary, narration, seed).
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from .base import NarrationRequest, NarrationResult, Narrator, Validation, clean_narration, register_narrator, \
    result_from_answer

_DIRECTIONS = {
    "left": "left", "right": "right", "up": "up", "down": "down",
    "up-left": "up and to the left", "up-right": "up and to the right",
    "down-left": "down and to the left", "down-right": "down and to the right",
}
# verb families of the original narration (lemma -> family)
_FAMILIES = {
    "open": "open", "close": "close", "shut": "close",
    "pull": "pull", "push": "push", "slide": "slide",
    "turn": "turn", "twist": "turn", "rotate": "turn",
    "flip": "switch", "switch": "switch", "toggle": "switch", "press": "switch",
    "pick": "lift", "lift": "lift", "raise": "lift", "take": "lift", "grab": "lift",
    "put": "place", "place": "place", "set": "place", "drop": "place",
    "move": "move", "carry": "move", "bring": "move", "shift": "move",
}
# what the hand does to the object while in contact, per family (default: "moves it")
_CONTACT_VERBS = {"open": "pulls", "pull": "pulls", "close": "pushes", "push": "pushes", "slide": "slides",
                  "turn": "turns", "switch": "pushes", "lift": "lifts", "place": "puts", "move": "moves"}
_PARTICLES = {"up", "down", "on", "off", "open", "over", "out", "back", "away", "in"}
_STOP = {"to", "with", "from", "into", "onto", "across", "toward", "towards", "on", "in", "off", "open", "closed",
         "shut", "left", "right", "up", "down", "using", "by", "at", "and", "then", "back", "away"}
_LEAD = {"for", "at", "to", "toward", "towards", "into", "onto"}
# what is touched to turn on/off a thing that is not itself a control ("turns on the light")
_CONTROLS = {"light": "switch", "lamp": "switch", "burner": "knob", "stove": "knob", "hob": "knob", "tap": "handle"}
_PARTS = {"handle", "knob", "switch", "door", "lid", "button", "drawer", "lever", "tap"}
_CONTAINERS = {"microwave", "cabinet", "oven", "fridge", "refrigerator", "cupboard", "dishwasher", "closet",
               "wardrobe", "box"}
_SLIDERS = {"drawer", "slide", "sliding"}
# wordings: the first is the canonical one (variant 0); further variants draw from the rest
_REACH = ("reaches {dir} to {target}", "moves {dir} to {target}", "goes {dir} to {target}")
_REACH_STILL = ("reaches for {target}", "goes for {target}")
_GRASP = ("grasps it", "takes hold of it", "grabs it")
_PRESS = ("presses it", "pushes against it")
_TOUCH = {"S": "touches the other hand", "O": "touches another person"}
_RELEASE = ("releases it", "lets go of it", "lets it go")
_HOLD = ("holds {target}", "keeps hold of {target}")


@dataclass(frozen=True)
class ParsedNarration:
    tag: str  # "#C " or ""
    actor: str | None  # "C", "the man X", ...
    verb: str | None  # the lemma, e.g. "open"
    family: str | None
    particle: str | None  # "on", "up", ...
    obj: str | None  # "the microwave"

    @property
    def possessive(self) -> str:
        return f"{self.actor}'s" if self.actor else "the"


_INTRANSITIVE = {"goes", "slides", "moves", "rolls", "falls", "swings", "turns", "opens", "closes", "drops", "spins"}


def _lemma(word: str) -> str:
    """Third-person verb -> its base form (opens -> open, reaches -> reach, carries -> carry, moves -> move)."""
    w = word.lower()
    if w in ("goes", "does"):
        return w[:-2]
    if len(w) < 4 or not w.endswith("s") or w.endswith("ss"):
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "sses", "zes")):
        return w[:-2]
    return w[:-1]


def parse_narration(text: str) -> ParsedNarration:
    """Actor, verb, particle and object phrase of an Ego4D-style narration (``#C C opens the
    microwave`` -> ``C``, ``open``, ``None``, ``the microwave``); parts it cannot find are None."""
    m = re.match(r"\s*(#\s*[A-Za-z])\b\s*", text or "")
    tag = m.group(1).replace(" ", "") + " " if m else ""
    words = clean_narration(text).rstrip(".!").split()
    if not words:
        return ParsedNarration(tag, None, None, None, None, None)
    i = 0
    if words[0] == "C" or re.fullmatch(r"[A-Z]", words[0]):
        actor, i = words[0], 1
    elif words[0].lower() in ("the", "a", "an") and len(words) > 2 and words[2][:1].isupper():
        actor, i = " ".join(words[:3]), 3  # "The man X" / "A woman Y"
    else:
        actor = None
        if words[0].lower() in ("the", "a", "an"):  # "the red cup slides left": the subject is the object
            j = next((j for j in range(2, len(words)) if words[j].lower().endswith("s") and
                      (_lemma(words[j]) in _FAMILIES or words[j].lower() in _INTRANSITIVE)), None)
            if j is not None:
                verb = _lemma(words[j])
                return ParsedNarration(tag, None, verb, None, None, " ".join(words[:j]))  # moves by itself
    if i >= len(words):
        return ParsedNarration(tag, actor, None, None, None, None)
    verb = _lemma(words[i])
    i += 1
    particle = None
    if i < len(words) and words[i].lower() in _PARTICLES and (i + 1 < len(words) and words[i + 1].lower() in
                                                                ("the", "a", "an", "his", "her", "its")):
        particle, i = words[i].lower(), i + 1
    while i < len(words) - 1 and words[i].lower() in _LEAD:  # "reaches for the kettle"
        i += 1
    obj_words = []
    for j in range(i, len(words)):
        w, nxt = words[j].lower(), (words[j + 1].lower() if j + 1 < len(words) else None)
        adjective = w in ("left", "right", "up", "down") and nxt is not None and nxt not in _STOP | _PARTICLES
        if w in _STOP and obj_words and not adjective:  # "the right burner" keeps its "right"
            break
        obj_words.append(words[j])
    obj = " ".join(obj_words) or None
    if obj and obj.split()[0].lower() not in ("the", "a", "an", "his", "her", "its", "their", "this", "that"):
        obj = "the " + obj
    if particle is None and i + len(obj_words) < len(words) and \
            words[i + len(obj_words)].lower() in _PARTICLES | {"shut", "closed"}:
        particle = words[i + len(obj_words)].lower()
    family = _FAMILIES.get(verb)
    if family == "turn" and obj and _head(obj) == "switch":  # "turns on the light switch": a switch is flipped
        family = "switch"
    return ParsedNarration(tag, actor, verb, family, particle, obj)


def _head(obj: str) -> str:
    return obj.split()[-1].lower()


def target_of(p: ParsedNarration) -> str:
    """The part the hand goes for: the object, or its handle for opening/closing a container."""
    if not p.obj:
        return "an object"
    if p.family in ("open", "close", "pull", "push", "slide") and _head(p.obj) not in _PARTS:
        return f"{p.obj} handle"
    if p.family in ("turn", "switch") and _head(p.obj) in _CONTROLS:
        return f"{p.obj} {_CONTROLS[_head(p.obj)]}"
    return p.obj


def outcome_of(p: ParsedNarration, direction: str) -> str | None:
    """What happens to the object when it moved while held (``direction`` from the dynamics); None
    where the hand's clause already says it (moving, lifting, placing)."""
    obj = p.obj or "the object"
    words = set(obj.lower().split())
    family = p.family
    if family in ("pull", "push", "slide") and p.particle in ("open", "shut", "closed"):  # "pulls the door open"
        family = "open" if p.particle == "open" else "close"
    if family in ("open", "close"):
        how = "slides" if words & _SLIDERS or p.family == "slide" else "swings"
        thing = obj if words & (_PARTS | _SLIDERS) or not words & _CONTAINERS else f"{obj} door"
        return f"{thing} {how} {'open' if family == 'open' else 'shut'}"
    if p.family == "turn":
        return f"{obj} turns" + (f" {p.particle}" if p.particle in ("on", "off") else "")
    if p.family == "switch":
        return f"{obj} flips" + (f" {p.particle}" if p.particle in ("on", "off") else "")
    return None


class _Words:
    """Picks wordings: the canonical (first) one for variant 0, seeded draws for the others."""

    def __init__(self, rng: random.Random | None):
        self.rng = rng

    def __call__(self, options: tuple[str, ...], **kw) -> str:
        s = options[0] if self.rng is None else self.rng.choice(options)
        return s.format(**kw)


def _join(clauses: list[str]) -> str:
    if len(clauses) <= 1:
        return "".join(clauses)
    return ", ".join(clauses[:-1]) + " and " + clauses[-1]


def hand_clauses(h: dict, p: ParsedNarration, words: _Words) -> tuple[list[str], str | None]:
    """Clauses of one hand from its contact phases, and the outcome for the object (or None)."""
    phases = h.get("phases") or []
    target = target_of(p)
    family = "switch" if p.family == "turn" and _head(target) == "switch" else p.family
    family_verb = _CONTACT_VERBS.get(family or "", "moves")
    clauses: list[str] = []
    outcome = None
    for j, ph in enumerate(phases):
        nxt = phases[j + 1] if j + 1 < len(phases) else None
        moving = ph["direction"] != "still"
        d = _DIRECTIONS.get(ph["direction"], ph["direction"])
        if ph["state"] == "N":
            if j > 0:  # a contact just ended
                clauses.append(words(_RELEASE))
            if nxt is not None:  # going for a contact
                clauses.append(words(_REACH, dir=d, target=target) if moving else words(_REACH_STILL, target=target))
            elif moving and j == 0 and p.obj:  # a reach that ends before the contact: keep its target
                clauses.append(f"moves {d} toward {target}")
            elif moving:
                clauses.append(f"moves {d}" if j == 0 else f"then moves {d}")
            elif j == 0:
                clauses.append("stays still")
            continue
        if ph["state"] in _TOUCH:
            clauses.append(_TOUCH[ph["state"]])
            continue
        # in contact with an object (P portable, F stationary)
        if j == 0:
            clauses.append(words(_HOLD, target=target))
        elif ph["state"] == "F" and family == "switch":
            clauses.append(words(_PRESS))
        else:
            clauses.append(words(_GRASP))
        od = ph.get("object_direction")
        obj_moved = od is not None and od != "still"
        direction = od if obj_moved else ph["direction"]
        if obj_moved or moving:
            dd = _DIRECTIONS.get(direction, direction)
            if family == "turn" and not obj_moved:
                clauses.append(f"{family_verb} it")
            elif p.family == "place" and direction.startswith("down"):
                clauses.append("puts it down")
            elif p.family == "lift" and direction.startswith("up"):
                clauses.append("lifts it")
            else:
                clauses.append(f"{family_verb} it {dd}")
        if obj_moved and outcome is None:
            outcome = outcome_of(p, od)
    return clauses, outcome


def _main_side(hands: dict) -> str:
    def rank(side):
        h = hands[side]
        return (h.get("in_contact_fraction", 0.0), h.get("extent", 0.0), side == "right")

    return max(hands, key=rank)


def _object_motion(summary: dict, p: ParsedNarration) -> str | None:
    moving = [o for o in summary.get("objects", []) if o.get("direction", "still") != "still"]
    if not moving:
        return None
    o = max(moving, key=lambda o: (o.get("visible", 0.0), o.get("extent", 0.0)))
    name = p.obj or "an object"
    return f"{name} moves {_DIRECTIONS.get(o['direction'], o['direction'])}"


def describe(summary: dict, narration: str = "", rng: random.Random | None = None) -> str:
    """The dynamics sentence (with its subject) for one paraphrase of the original narration."""
    p = parse_narration(narration)
    words = _Words(rng)
    hands = summary.get("hands", {})
    if not hands:
        base = clean_narration(narration).rstrip(". ")
        motion = _object_motion(summary, p)
        tail = f"no hands are visible and {motion}" if motion else "no hands are visible and nothing moves"
        text = f"{base}; {tail}." if base else f"{tail}."
        return text[0].upper() + text[1:]
    main = _main_side(hands)
    if not hands[main].get("phases"):  # a summary written before contact phases were recorded
        hands = {s: dict(h, phases=[{"state": (h.get("contact_states") or ["N"])[0], "direction": h["direction"],
                                     "extent": h.get("extent", 0.0)}]) for s, h in hands.items()}
    clauses, outcome = hand_clauses(hands[main], p, words)
    subject = f"{p.possessive} {main} hand"
    text = f"{subject} {_join(clauses)}"
    if outcome:
        text += f"; {outcome}"
    for side in ("right", "left"):
        if side == main or side not in hands:
            continue
        other, _ = hand_clauses(hands[side], p, words)
        if other and other != ["stays still"]:
            text += f"; the {side} hand {_join(other)}"
    text += "."
    return text[0].upper() + text[1:]


def _rng(seed: int, key: str, paraphrase: int, variant: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{key}|{paraphrase}|{variant}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


@dataclass
class Options:
    pattern: str = "{tag}{details}"  # {tag}: "#C " of the original, {narration}: the cleaned original, {details}: the dynamics sentence
    seed: int = 0  # picks the wording of the extra variants (variant 0 is always the canonical wording)
    variants: int = 1  # narrations per paraphrase of the original (different wordings of the same dynamics)


@register_narrator("template", options=Options)
class TemplateNarrator(Narrator):
    """Deterministic narrations from the dynamics summary (no model)."""

    name = "template"

    def __init__(self, validation: Validation = Validation(), options: Options = Options()):
        if "{details}" not in options.pattern:
            raise ValueError(f"narrator.pattern must contain {{details}}, got {options.pattern!r}")
        if int(options.variants) < 1:
            raise ValueError(f"narrator.variants must be >= 1, got {options.variants}")
        self.pattern, self.seed, self.variants = options.pattern, int(options.seed), int(options.variants)
        self.validation = validation

    def narrate(self, r: NarrationRequest) -> NarrationResult:
        lines: list[str] = []
        for i, original in enumerate(r.paraphrases):
            tag = parse_narration(original).tag
            base = clean_narration(original).rstrip(". ")
            for v in range(self.variants):
                details = describe(r.summary, original, None if v == 0 else _rng(self.seed, r.key, i, v))
                text = self.pattern.replace("{tag}", tag).replace("{narration}", base).replace("{details}", details)
                text = text.strip().lstrip(". ")
                if text not in lines:
                    lines.append(text)
        return result_from_answer("\n".join(lines), self.validation)

    def narrate_batch(self, requests: list[NarrationRequest]) -> list[NarrationResult]:
        return [self.narrate(r) for r in requests]

