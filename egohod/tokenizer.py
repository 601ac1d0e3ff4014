"""Text tokenizers of the registered models.

``get_tokenizer(name)`` returns a callable ``tok(texts: str | list[str]) -> LongTensor [B, L]``:

* EgoVideo B/L/tiny: CLIP byte-pair encoding from the ``open_clip`` wheel (its vocabulary file
  ships inside the wheel, nothing is downloaded). ``L = 77``; every row is
  ``[SOT=49406, tokens..., EOT=49407, 0, 0, ...]``; text is ftfy-fixed, whitespace-cleaned and
  lower-cased; too-long text is cut so that the last position holds EOT (``clip.tokenize(...,
  truncate=True)``, which upstream uses).
* EgoVideo-G: the BERT-large-uncased WordPiece tokenizer from a *local* directory holding
  ``vocab.txt`` (``get_tokenizer("egovideo_g", bert_path=DIR)`` or the ``EGOHOD_BERT_PATH``
  environment variable); it is never downloaded. Returns ``input_ids``; the attention mask is
  ``ids != 0``.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import torch

CLIP_CONTEXT_LENGTH = 77
SOT_TOKEN = 49406
EOT_TOKEN = 49407


def _load_open_clip_tokenizer_module():
    """``open_clip.tokenizer`` without importing the whole ``open_clip`` package (seconds faster).

    Falls back to a normal import if the file cannot be loaded on its own.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the CLIP tokenizer needs open_clip_torch (pip install open_clip_torch)")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    try:
        mod_spec = importlib.util.spec_from_file_location("_egohod_open_clip_tokenizer", path)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        return mod
    except Exception:  # pragma: no cover - layout changed: import the package
        from open_clip import tokenizer as mod

        return mod


class ClipTokenizer:
    """CLIP BPE: ``tok(texts) -> LongTensor [B, context_length]``."""

    def __init__(self, context_length: int = CLIP_CONTEXT_LENGTH):
        mod = _load_open_clip_tokenizer_module()
        self._tok = mod.SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.sot_token_id, self.eot_token_id = self._tok.sot_token_id, self._tok.eot_token_id
        self.vocab_size = len(self._tok.encoder)

    def __repr__(self) -> str:
        return f"ClipTokenizer(context_length={self.context_length}, vocab={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without SOT/EOT."""
        return self._tok.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids if int(i) not in (0, self.sot_token_id, self.eot_token_id)]
        return self._tok.decode(ids).strip()

    def __call__(self, texts: str | Sequence[str]) -> torch.LongTensor:
        texts = _as_list(texts)
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.sot_token_id] + self.encode(t) + [self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = torch.tensor(ids)
        return out


class BertTokenizer:
    """BERT WordPiece from a local directory: ``tok(texts) -> LongTensor [B, context_length]``."""

    def __init__(self, bert_path: str | Path | None, context_length: int):
        path = bert_path or os.environ.get("EGOHOD_BERT_PATH")
        if not path:
            raise FileNotFoundError(
                "egovideo_g uses the bert-large-uncased tokenizer, which egohod never downloads. Pass a local "
                "directory holding its vocab.txt: get_tokenizer('egovideo_g', bert_path='/path/to/bert-large-uncased') "
                "or set EGOHOD_BERT_PATH."
            )
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not (folder / "vocab.txt").is_file():
            raise FileNotFoundError(f"no BERT vocabulary at {folder / 'vocab.txt'}: expected a local "
                                    "bert-large-uncased directory holding vocab.txt")
        from transformers import BertTokenizer as _HFBert

        self._tok = _HFBert.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)
        self.context_length = context_length

    def __call__(self, texts: str | Sequence[str]) -> torch.LongTensor:
        enc = self._tok(_as_list(texts), padding="max_length", truncation=True, max_length=self.context_length,
                        return_tensors="pt")
        return enc["input_ids"].long()


def _as_list(texts) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be a string or a list of strings; got items of type {sorted(set(bad))}")
    return texts


def get_tokenizer(name: str, **kwargs):
    """Tokenizer of a registered model (from its input spec's ``extra['tokenizer']``)."""
    from .models.registry import get_input_spec

    spec = get_input_spec(name)
    kind = spec.extra.get("tokenizer", "clip_bpe")
    ctx = int(spec.extra.get("context_length", CLIP_CONTEXT_LENGTH))
    if kind == "clip_bpe":
        return ClipTokenizer(context_length=kwargs.get("context_length", ctx))
    if kind == "bert":
        return BertTokenizer(kwargs.get("bert_path"), context_length=kwargs.get("context_length", ctx))
    raise ValueError(f"model {name!r} has no text tokenizer (input spec tokenizer={kind!r})")
