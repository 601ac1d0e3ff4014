"""``transformers``: a local causal language model directory (Hugging Face format, no download).

The system and user prompts are rendered from the same templates as the ``openai`` narrator and
formatted with the tokenizer's chat template when it has one (plain ``system\\n\\nuser\\n`` text
otherwise). Requests of a batch are generated together with left padding. Greedy decoding by
default, so a run is reproducible. With sampling (``temperature > 0``) an empty or invalid answer
is drawn again, up to ``max_retries`` times (seeds ``seed + attempt``); greedy decoding would only
repeat it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...config import transport
from .base import NarrationRequest, NarrationResult, Narrator, Validation, load_template, register_narrator, render, \
    result_from_answer


@dataclass
class Options:
    model_dir: Optional[str] = None  # a local Hugging Face model folder (nothing is downloaded)
    system_prompt: str = "system.txt"  # configs/hod/prompts/system.txt (or an absolute path)
    user_prompt: str = "user.txt"
    num_narrations: int = 1
    max_new_tokens: int = 96
    temperature: float = 0.0  # 0: greedy (reproducible)
    device: str = "auto"
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int = 8  # requests generated together
    seed: int = 0
    max_retries: int = transport(2)  # sampled generation (temperature > 0): new draws for invalid answers


@register_narrator("transformers", options=Options)
class TransformersNarrator(Narrator):
    """A local Hugging Face causal LM directory (batched greedy generation)."""

    name = "transformers"
    generate_options: dict = {}  # extra ``generate`` settings of subclasses (e.g. repetition_penalty)
    retry_temperature: float = 0.0  # > 0: invalid greedy answers are redrawn with sampling at this temperature

    def __init__(self, validation: Validation = Validation(), options: Options = Options()):
        o = options
        if not o.model_dir or not Path(o.model_dir).is_dir():
            raise ValueError(f"narrator transformers needs narrator.model_dir=DIR of a local model, got {o.model_dir!r}")
        self._load(o.model_dir, o.device, o.dtype)
        self.system = load_template(o.system_prompt)
        self.user = load_template(o.user_prompt, required=("narration",))
        self.validation = validation
        self.num_narrations = int(o.num_narrations)
        self.max_new_tokens, self.temperature = int(o.max_new_tokens), float(o.temperature)
        self.batch_size, self.seed, self.max_retries = int(o.batch_size), int(o.seed), int(o.max_retries)

    def _load(self, model_dir: str, device: str, dtype: str, gguf_file: str | None = None) -> None:
        """Tokenizer and model from a local folder (``gguf_file``: a GGUF file in it, dequantised)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ...device import resolve_device

        self.torch = torch
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        self.tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, **extra)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        device = resolve_device(device, "device")
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                       "float16": torch.float16}[dtype]
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch_dtype, **extra)
        self.model.to(device).eval()
        self.device = device

    def prompt(self, req: NarrationRequest) -> str:
        system = render(self.system, req, self.num_narrations)
        user = render(self.user, req, self.num_narrations)
        if getattr(self.tok, "chat_template", None):
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return f"{system}\n\n{user}\n"

    def narrate_batch(self, requests: list[NarrationRequest]) -> list[NarrationResult]:
        out: list[NarrationResult] = []
        for i in range(0, len(requests), self.batch_size):
            chunk = requests[i: i + self.batch_size]
            try:
                res = self._generate(chunk, self.seed, self.temperature)
                redraw = self.temperature if self.temperature > 0 else self.retry_temperature
                retries = self.max_retries if redraw > 0 else 0
                for attempt in range(1, retries + 1):
                    bad = [k for k, r in enumerate(res) if not r.ok]
                    if not bad:
                        break
                    for k, r in zip(bad, self._generate([chunk[k] for k in bad], self.seed + attempt, redraw)):
                        r.attempts = attempt + 1
                        res[k] = r
                out.extend(res)
            except Exception as e:  # recorded per request, the run goes on
                out.extend(NarrationResult([], f"generation failed: {type(e).__name__}: {e}") for _ in chunk)
        return out

    def _generate(self, chunk: list[NarrationRequest], seed: int, temperature: float) -> list[NarrationResult]:
        torch = self.torch
        enc = self.tok([self.prompt(r) for r in chunk], return_tensors="pt", padding=True).to(self.device)
        sample = temperature > 0
        if sample:
            torch.manual_seed(seed)
        with torch.no_grad():
            ids = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=sample,
                                      temperature=temperature if sample else None, top_p=None, top_k=None,
                                      pad_token_id=self.tok.pad_token_id, **self.generate_options)
        new = ids[:, enc["input_ids"].shape[1]:]
        texts = self.tok.batch_decode(new, skip_special_tokens=True)
        return [self.check(t, r) for t, r in zip(texts, chunk)]

    def check(self, answer: str, req: NarrationRequest) -> NarrationResult:
        """The validated narrations of one decoded answer to ``req``."""
        return result_from_answer(answer, self.validation, limit=self.num_narrations)

