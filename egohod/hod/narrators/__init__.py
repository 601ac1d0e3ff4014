"""Narrators: ``openai`` (any OpenAI-compatible chat-completions server), ``transformers`` (a local
model directory), ``local`` (a GGUF chat model, no server) and ``template`` (deterministic, no
model). Prompts are editable templates in ``configs/hod/prompts/``."""
from .base import (NarrationRequest, NarrationResult, Narrator, Validation, create_narrator, list_narrators,
                   register_narrator, validate_output)

__all__ = ["NarrationRequest", "NarrationResult", "Narrator", "Validation", "create_narrator", "list_narrators",
           "register_narrator", "validate_output"]
