"""The narrator interface, prompt templates and output validation.

A narrator turns (original narration, dynamics summary) requests into validated narrations::

    nar = create_narrator("template")
    results = nar.narrate_batch([NarrationRequest(key, narration, summary, duration)])

Every request gets a :class:`NarrationResult`: ``texts`` (validated, possibly several) or an
``error`` saying why none passed (server error, timeout, empty answer, too long, ...). Nothing is
dropped silently.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...registry import Registry

PLACEHOLDERS = ("narration", "duration", "dynamics", "dynamics_json", "num_narrations")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass
class NarrationRequest:
    key: str
    narration: str
    summary: dict
    duration: float
    texts: list[str] = field(default_factory=list)  # every paraphrase of the original (``narration`` is the first)

    @property
    def paraphrases(self) -> list[str]:
        return [t for t in self.texts if t and t.strip()] or [self.narration]


@dataclass
class NarrationResult:
    texts: list[str] = field(default_factory=list)
    error: str | None = None
    raw: str | None = None
    attempts: int = 1
    rejected: list[str] = field(default_factory=list)  # reasons for lines that failed validation
    transport_error: bool = False  # failed because the model could not be reached (not because of its answer)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.texts)


@dataclass(frozen=True)
class Validation:
    min_chars: int = 8
    max_chars: int = 400
    max_words: int = 80
    max_narrations: int = 5


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\(?\d+[.)]|narration\s*\d*\s*:)\s*", re.IGNORECASE)


def validate_output(raw: str | None, v: Validation) -> tuple[list[str], list[str]]:
    """Split a model answer into narrations (one per line; bullets, numbering and wrapping quotes
    removed) and check each against the length bounds. Returns ``(accepted, rejection_reasons)``."""
    if raw is None or not raw.strip():
        return [], ["empty answer"]
    ok, bad = [], []
    for i, line in enumerate(raw.strip().splitlines(), start=1):
        s = _BULLET.sub("", line).strip().strip('"\u201c\u201d\'').strip()
        if not s:
            continue
        n_words = len(s.split())
        if len(s) < v.min_chars:
            bad.append(f"line {i} too short ({len(s)} < {v.min_chars} chars)")
        elif len(s) > v.max_chars:
            bad.append(f"line {i} too long ({len(s)} > {v.max_chars} chars)")
        elif n_words > v.max_words:
            bad.append(f"line {i} has too many words ({n_words} > {v.max_words})")
        elif s not in ok:
            ok.append(s)
    return ok[: v.max_narrations], bad


def result_from_answer(raw: str | None, v: Validation, attempts: int = 1, limit: int | None = None) -> NarrationResult:
    """Validated narrations of one answer (at most ``limit`` of them), or an error naming why none passed."""
    texts, bad = validate_output(raw, v)
    texts = texts[:limit] if limit else texts
    if not texts:
        return NarrationResult([], "invalid answer: " + "; ".join(bad or ["no narration lines"]), raw, attempts, bad)
    return NarrationResult(texts, None, raw, attempts, bad)


# ----------------------------------------------------------------------------- prompts
def default_prompt_dir() -> Path:
    """``configs/hod/prompts`` (follows ``$EGOHOD_HOD_CONFIGS``)."""
    from ..config import config_dir

    return config_dir() / "prompts"


def load_template(path: str | Path, required: tuple[str, ...] = ()) -> str:
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = default_prompt_dir() / p
    if not p.is_file():
        raise FileNotFoundError(f"prompt template {path} not found (looked in {p})")
    text = p.read_text(encoding="utf-8")
    found = set(_PLACEHOLDER_RE.findall(text))
    missing = [r for r in required if r not in found]
    if missing:
        raise ValueError(f"prompt template {p} lacks placeholder(s) {['{' + m + '}' for m in missing]}; "
                         f"available: {['{' + n + '}' for n in PLACEHOLDERS]}")
    return text


def render(template: str, req: NarrationRequest, num_narrations: int = 1) -> str:
    """Fill the known ``{placeholders}``; other braces (e.g. JSON examples) are left as written."""
    values = {
        "narration": clean_narration(req.narration),
        "duration": f"{req.duration:.1f}",
        "dynamics": "\n".join(f"- {e}" for e in req.summary.get("events", [])) or "- no hands detected",
        "dynamics_json": json.dumps({k: v for k, v in req.summary.items() if k != "events"}, separators=(",", ":")),
        "num_narrations": str(num_narrations),
    }
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def clean_narration(text: str) -> str:
    """Drop Ego4D tags (``#C``, ``#O``, ``#unsure``, ``#summary``) and collapse whitespace."""
    s = re.sub(r"#\s*(?:unsure|summary)\b", "", text or "", flags=re.IGNORECASE)
    s = re.sub(r"#\s*[A-Za-z]\b\s*", "", s)
    return re.sub(r"\s+", " ", s).strip()


# ----------------------------------------------------------------------------- registry
class Narrator:
    name = "base"

    def narrate_batch(self, requests: list[NarrationRequest]) -> list[NarrationResult]:
        raise NotImplementedError

    def close(self) -> None:
        pass


NARRATORS = Registry("narrator",
                     builtins=tuple(f"{__package__}.{m}" for m in ("local_gguf", "openai_chat", "template", "transformers_local")))


def register_narrator(name: str, options: type):
    """Class decorator registering a :class:`Narrator` subclass built as ``cls(validation, options)``,
    where ``options`` is its settings dataclass: the one place their defaults live (the
    ``narrator=<name>`` config schema is generated from it)."""
    return NARRATORS.register(name, options=options)


def list_narrators() -> list[str]:
    return NARRATORS.list()


def create_narrator(name: str, validation: Validation = Validation(), **kwargs) -> Narrator:
    """Build a registered narrator with the output checks ``validation`` and its settings."""
    return NARRATORS.get(name)(validation, NARRATORS.options(name, kwargs))
