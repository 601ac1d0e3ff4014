"""The ``openai`` narrator against a real HTTP server on 127.0.0.1 (loopback only): batching,
a timeout, retries with backoff, HTTP errors and empty/invalid answers."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from egohod.hod.narrators import NarrationRequest, Validation, create_narrator

SUMMARY = {"events": ["right hand: moves right by 0.10 of the frame; contact with a portable object, holding o1"]}


class FakeChatServer:
    """Scripted chat-completions server; behaviour chosen by a tag inside the narration."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                tag = next((t for t in ("slow-once", "busy-once", "empty", "bad-request", "always-500", "toolong")
                            if t in user), "normal")
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    n = server.calls[tag + user] = server.calls.get(tag + user, 0) + 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(0.15)
                    if tag == "slow-once" and n == 1:
                        time.sleep(1.2)  # longer than the client's timeout
                    if tag == "busy-once" and n == 1:
                        return self._send(503, {"error": "overloaded"}, {"Retry-After": "0"})
                    if tag == "bad-request":
                        return self._send(400, {"error": {"message": "unknown model"}})
                    if tag == "always-500":
                        return self._send(500, {"error": "boom"})
                    content = {"empty": "  ", "toolong": "x " * 600}.get(
                        tag, "1. C lifts the cup with the right hand.\n2. \"C raises the cup to the right.\"")
                    self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def chat_server():
    s = FakeChatServer()
    yield s
    s.close()


def _narrator(url, **kw):
    args = dict(base_url=url, model="tiny-chat", timeout_s=0.5, max_retries=2, backoff_s=0.01,
                max_concurrency=4, num_narrations=2)
    args.update(kw)
    return create_narrator("openai", validation=Validation(min_chars=8, max_chars=300), **args)


def test_batch_retries_timeouts_and_failures(chat_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    nar = _narrator(chat_server.url)
    tags = ["normal", "slow-once", "busy-once", "empty", "bad-request", "always-500", "toolong"]
    reqs = [NarrationRequest(f"k{i}", f"#C C picks up the cup ({t})", SUMMARY, 2.0) for i, t in enumerate(tags)]
    res = dict(zip(tags, nar.narrate_batch(reqs)))
    nar.close()

    assert res["normal"].texts == ["C lifts the cup with the right hand.", "C raises the cup to the right."]
    assert res["normal"].ok and res["normal"].attempts == 1
    assert res["slow-once"].ok and res["slow-once"].attempts == 2  # timed out once, then answered
    assert res["busy-once"].ok and res["busy-once"].attempts == 2  # 503 + Retry-After: 0, retried
    assert not res["empty"].ok and res["empty"].error == "invalid answer: empty answer"
    assert not res["bad-request"].ok and res["bad-request"].attempts == 1 and "HTTP 400" in res["bad-request"].error
    assert "unknown model" in res["bad-request"].error
    assert res["always-500"].error.startswith("gave up after 3 attempts") and res["always-500"].attempts == 3
    assert "too long" in res["toolong"].error

    # batching: requests overlapped on the server (a wall-clock bound here would flake on a
    # loaded machine; overlap is what batching means)
    assert chat_server.max_in_flight >= 3
    # the request carried the model, both prompts (narration cleaned, dynamics filled in) and the key
    body = chat_server.bodies[0]
    assert body["model"] == "tiny-chat" and [m["role"] for m in body["messages"]] == ["system", "user"]
    user = next(b for b in chat_server.bodies if "(normal)" in b["messages"][1]["content"])["messages"][1]["content"]
    assert "Narration: C picks up the cup (normal)" in user and "holding o1" in user and "Write 2 narration" in user
    assert all(h.get("Authorization") == "Bearer sk-test-123" for h in chat_server.headers)
    assert chat_server.calls["always-500" + user.replace("(normal)", "(always-500)")] == 3


def test_unreachable_server_is_a_recorded_failure():
    nar = _narrator("http://127.0.0.1:9/v1", max_retries=1, timeout_s=0.2)  # port 9: nothing listens
    [r] = nar.narrate_batch([NarrationRequest("k", "#C C opens the door", SUMMARY, 1.0)])
    nar.close()
    assert not r.ok and r.attempts == 2 and "cannot reach http://127.0.0.1:9/v1" in r.error


def test_missing_settings_are_clear_errors(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ValueError, match="narrator.base_url"):
        create_narrator("openai")
    with pytest.raises(ValueError, match="narrator.model"):
        create_narrator("openai", base_url="http://127.0.0.1:1/v1")


def test_pipeline_records_llm_failures_per_clip(hod_corpus, chat_server, tmp_path):
    import csv

    from conftest import run_args

    from egohod.hod.cli import main

    clips = tmp_path / "two.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text", "uid"])
        w.writerow(["vidA", 0.2, 1.8, "#C C carries the block", "good"])
        w.writerow(["vidB", 0.1, 1.9, "#C C waves (empty)", "empty"])
    out = tmp_path / "llm"
    args = run_args(dict(hod_corpus, clips=clips), out, "narrator=openai", f"narrator.base_url={chat_server.url}",
                    "narrator.model=tiny-chat", "narrator.timeout_s=2", "narrator.backoff_s=0.01")
    assert main(["run", *args]) == 0
    assert main(["merge", f"out={out}"]) == 0
    recs = {r["uid"]: r for r in map(json.loads, (out / "hod_records.jsonl").read_text().splitlines())}
    assert recs["good"]["status"] == "ok" and recs["good"]["narrations"][0] == "C lifts the cup with the right hand."
    assert recs["empty"]["status"] == "failed" and recs["empty"]["stage"] == "narrate"
    assert recs["empty"]["reason"] == "invalid answer: empty answer"
    assert recs["empty"]["dynamics"]["hands"]  # earlier stages' results are kept for failed clips
    assert json.loads((out / "summary.json").read_text())["failed_by_stage"] == {"narrate": 1}
