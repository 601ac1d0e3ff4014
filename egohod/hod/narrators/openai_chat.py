"""``openai``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, hosted APIs).

Standard library only (``urllib``). Settings: ``base_url`` (default ``$OPENAI_BASE_URL``), ``model``
(default ``$OPENAI_MODEL``), and the API key read from the environment variable named by
``api_key_env`` (default ``OPENAI_API_KEY``; the key never lives in a config file). A batch of
requests is sent concurrently (``max_concurrency`` threads); each request has a ``timeout_s`` and is
retried up to ``max_retries`` times on connection errors, timeouts, HTTP 429 and 5xx, waiting
``backoff_s * 2**attempt`` seconds (or the server's ``Retry-After``, capped at ``max_backoff_s``).
Malformed replies (not a chat-completions answer) are retried the same way, and so are empty or
invalid narrations (asked again at once). Other HTTP errors (400, 401, 404, ...) fail that request
at once. Every failure is returned as a result with a reason; ``transport_error`` marks those where
the server never gave a usable reply, which the runner counts to detect an outage.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from ...config import transport

from .base import NarrationRequest, NarrationResult, Narrator, Validation, load_template, register_narrator, render, \
    result_from_answer

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Options:
    base_url: Optional[str] = transport(None)  # where the server runs (default $OPENAI_BASE_URL); `model` names what answers
    model: Optional[str] = None  # default $OPENAI_MODEL
    api_key_env: str = transport("OPENAI_API_KEY")  # the environment variable holding the key (never a config file)
    system_prompt: str = "system.txt"  # configs/hod/prompts/system.txt (or an absolute path)
    user_prompt: str = "user.txt"  # placeholders: {narration} {duration} {dynamics} {dynamics_json} {num_narrations}
    num_narrations: int = 1
    temperature: float = 0.7
    max_tokens: int = 256
    timeout_s: float = transport(60.0)
    max_retries: int = transport(3)  # per request, on transport errors and malformed/empty/invalid answers
    backoff_s: float = transport(1.0)
    max_backoff_s: float = transport(30.0)
    max_concurrency: int = transport(8)
    extra_body: dict = field(default_factory=dict)  # merged into every request body (server-specific settings)


@register_narrator("openai", options=Options)
class OpenAIChatNarrator(Narrator):
    """OpenAI-compatible chat-completions server (urllib; batching, timeouts, retries)."""

    name = "openai"

    def __init__(self, validation: Validation = Validation(), options: Options = Options()):
        o = options
        self.base_url = (o.base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        if not self.base_url:
            raise ValueError("narrator openai needs narrator.base_url=URL or $OPENAI_BASE_URL "
                             "(e.g. http://127.0.0.1:8000/v1 for a local vLLM server)")
        self.model = o.model or os.environ.get("OPENAI_MODEL") or ""
        if not self.model:
            raise ValueError("narrator openai needs narrator.model=NAME or $OPENAI_MODEL")
        self.api_key = os.environ.get(o.api_key_env, "") if o.api_key_env else ""
        self.system = load_template(o.system_prompt)
        self.user = load_template(o.user_prompt, required=("narration",))
        self.validation = validation
        self.num_narrations = int(o.num_narrations)
        self.temperature, self.max_tokens = float(o.temperature), int(o.max_tokens)
        self.timeout_s, self.max_retries = float(o.timeout_s), int(o.max_retries)
        self.backoff_s, self.max_backoff_s = float(o.backoff_s), float(o.max_backoff_s)
        self.max_concurrency = max(1, int(o.max_concurrency))
        self.extra_body = dict(o.extra_body or {})
        self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="hod-openai")

    # ------------------------------------------------------------------ one request
    def messages(self, req: NarrationRequest) -> list[dict]:
        return [{"role": "system", "content": render(self.system, req, self.num_narrations)},
                {"role": "user", "content": render(self.user, req, self.num_narrations)}]

    def _post(self, body: dict) -> str:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            reason = f"HTTP {e.code} from {self.base_url}: {detail}"
            if e.code in RETRY_STATUS:
                ra = e.headers.get("Retry-After") if e.headers else None
                try:
                    retry_after = float(ra) if ra is not None else None
                except ValueError:
                    retry_after = None
                raise _Retryable(reason, retry_after) from None
            raise RuntimeError(reason) from None
        except (socket.timeout, TimeoutError) as e:
            raise _Retryable(f"timeout after {self.timeout_s:g}s ({e})") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise _Retryable(f"timeout after {self.timeout_s:g}s") from None
            raise _Retryable(f"cannot reach {self.base_url}: {e.reason}") from None
        except (ConnectionError, http.client.HTTPException) as e:
            raise _Retryable(f"connection error: {type(e).__name__}: {e}") from None
        try:
            obj = json.loads(payload)
            content = obj["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise _Retryable(f"malformed chat-completions answer ({type(e).__name__}: {e}): {payload[:200]!r}") from None
        return content if isinstance(content, str) else ""

    def narrate_one(self, req: NarrationRequest) -> NarrationResult:
        body = {"model": self.model, "messages": self.messages(req), "temperature": self.temperature,
                "max_tokens": self.max_tokens, **self.extra_body}
        errors: list[str] = []
        invalid: NarrationResult | None = None  # the last answer that failed validation
        for attempt in range(self.max_retries + 1):
            try:
                content = self._post(body)
            except _Retryable as e:
                errors.append(str(e))
                if attempt == self.max_retries:
                    break
                wait = e.retry_after if e.retry_after is not None else self.backoff_s * 2 ** attempt
                time.sleep(min(max(0.0, wait), self.max_backoff_s))
                continue
            except RuntimeError as e:
                return NarrationResult([], f"request failed: {e}", None, attempt + 1)
            res = result_from_answer(content, self.validation, attempts=attempt + 1, limit=self.num_narrations)
            if res.ok:
                return res
            invalid = res  # empty / too long / ...: ask again
            errors.append(res.error or "invalid answer")
        if invalid is not None:  # the server answered, but never with a valid narration
            invalid.attempts = len(errors)
            return invalid
        return NarrationResult([], f"gave up after {len(errors)} attempts: " + " | ".join(errors), None, len(errors),
                               transport_error=True)

    def narrate_batch(self, requests: list[NarrationRequest]) -> list[NarrationResult]:
        return list(self._pool.map(self.narrate_one, requests))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

