"""Recovery of HOD outputs (issue 12): failed clips are retried on request and only they, an LLM
outage leaves the shard unfinished instead of failing every clip, malformed/empty answers are
asked again, transport-only settings may change, re-narration from the stored dynamics, and an
unreadable chunk fails only the clips that overlap it."""
from __future__ import annotations

import csv
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import CHUNK, FPS, draw_frame, run_args

from egohod.hod.cli import main
from egohod.hod.narrators import NarrationRequest, Validation, create_narrator

SHARD = "shards/00000-of-00001"


def _records(out: Path) -> dict:
    return {r["uid"]: r for r in map(json.loads, (out / "hod_records.jsonl").read_text().splitlines())}


def _part_lines(out: Path) -> dict[str, str]:
    """Raw part-file line of every clip key (the bytes a rerun must not touch)."""
    lines = {}
    for p in sorted((out / SHARD).glob("part-*.jsonl")):
        for ln in p.read_text().splitlines():
            lines.setdefault(json.loads(ln)["key"], []).append(ln)
    return lines


class ChatServer:
    """A chat-completions server on 127.0.0.1 answering from a script: ``replies`` is a list of
    raw bodies (str) or None (valid answer) consumed one per request, then valid answers."""

    VALID = json.dumps({"choices": [{"message": {"role": "assistant", "content": "C lifts the red block to the right."}}]})

    def __init__(self, replies=()):
        self.replies = list(replies)
        self.calls = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    server.calls += 1
                    body = server.replies.pop(0) if server.replies else None
                data = (body if body is not None else server.VALID).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
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


@pytest.fixture
def chat():
    s = ChatServer()
    yield s
    s.close()


def _copy_corpus(hod_corpus, tmp_path) -> dict:
    videos = tmp_path / "videos"
    shutil.copytree(hod_corpus["videos"], videos)
    return dict(hod_corpus, videos=videos)


# ----------------------------------------------------------------------------- retry=failed
def test_retry_failed_reruns_only_the_failed_clips(hod_corpus, tmp_path, capsys):
    corpus = _copy_corpus(hod_corpus, tmp_path)
    out = tmp_path / "run"
    args = run_args(corpus, out)
    assert main(["run", *args]) == 0
    before = _part_lines(out)
    assert sum(json.loads(v[0])["status"] != "ok" for v in before.values()) == 4

    capsys.readouterr()
    assert main(["run", *args]) == 0  # default rerun: nothing redone, failures reported with the command
    printed = capsys.readouterr().out
    assert "4 failed" in printed
    cmd = next(ln for ln in printed.splitlines() if "to retry the 4 failed clip(s):" in ln).split(": ", 1)[1]
    assert cmd == "egohod hod run " + " ".join(args) + " retry=failed"
    assert _part_lines(out) == before

    shutil.copytree(corpus["videos"] / "vidB", corpus["videos"] / "vidD")  # the missing video appears
    capsys.readouterr()
    assert main(["run", *args, "retry=failed"]) == 0
    assert "4 failed (retrying them), 4 to do" in capsys.readouterr().out
    after = _part_lines(out)
    assert all(len(v) == 1 for v in after.values())  # superseded failed records were dropped
    for key, lines in before.items():
        if json.loads(lines[0])["status"] == "ok":
            assert after[key] == lines  # successful clips: byte for byte the same record
    d0 = json.loads(after["d0"][0])
    assert d0["status"] == "ok" and d0["attempt"] == 2
    a2 = json.loads(after["a2"][0])
    assert a2["status"] == "failed" and a2["attempt"] == 2  # still past the video end
    done = json.loads((out / SHARD / "done.json").read_text())
    assert done["ok"] == 5 and done["failed"] == 3
    assert main(["merge", f"out={out}"]) == 0
    assert _records(out)["d0"]["narrations"]


# ----------------------------------------------------------------------------- LLM outage
def _two_clips(tmp_path) -> Path:
    clips = tmp_path / "clips.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text", "uid"])
        for i in range(4):
            w.writerow(["vidA" if i % 2 == 0 else "vidB", 0.1 + 0.1 * i, 1.8, f"#C C carries the block {i}", f"c{i}"])
    return clips


def test_llm_outage_leaves_the_shard_unfinished_and_a_rerun_completes(hod_corpus, tmp_path, chat, capsys):
    corpus = dict(hod_corpus, clips=_two_clips(tmp_path))
    out = tmp_path / "llm"
    common = ["narrator=openai", "narrator.model=tiny-chat", "narrator.backoff_s=0.01", "max_transport_failures=3"]
    down = run_args(corpus, out, *common, "narrator.base_url=http://127.0.0.1:9/v1", "narrator.max_retries=0",
                    "narrator.timeout_s=0.3", "batch_size=1")
    assert main(["run", *down]) == 3
    err = capsys.readouterr().err
    assert "failed 3 clips in a row for transport reasons" in err and "cannot reach http://127.0.0.1:9/v1" in err
    assert not (out / SHARD / "done.json").exists()  # not marked done with every clip failed
    assert _part_lines(out) == {}  # the clips the outage hit were not recorded as finished

    # the server is back at another address; timeout/retries/concurrency/base_url are transport-only
    up = run_args(corpus, out, *common, f"narrator.base_url={chat.url}", "narrator.max_retries=2",
                  "narrator.timeout_s=5", "narrator.max_concurrency=2")
    assert main(["run", *up]) == 0
    done = json.loads((out / SHARD / "done.json").read_text())
    assert done["clips"] == 4 and done["ok"] == 4

    # a setting that changes the narrations is still refused, with a message instead of a traceback
    capsys.readouterr()
    assert main(["run", *up, "narrator.model=other-model"]) == 2
    assert "narrator.model: 'tiny-chat' -> 'other-model'" in capsys.readouterr().err


def test_sporadic_transport_failures_are_recorded_and_retryable():
    from egohod.hod.runner import NarratorUnavailableError, TransportGuard

    class Sink:
        def __init__(self):
            self.got = []

        def add(self, recs):
            self.got.extend(recs)

        def flush(self):
            pass

    def rec(k, bad):
        return {"key": k, "status": "failed" if bad else "ok", "reason": "timeout" if bad else None,
                **({"transport_error": True} if bad else {})}

    sink = Sink()
    guard = TransportGuard(sink, limit=3)
    guard.add([rec("a", True), rec("b", True), rec("c", False)])  # 2 in a row, then an answer
    assert [r["key"] for r in sink.got] == ["a", "b", "c"]
    guard.add([rec("d", True), rec("e", True)])
    with pytest.raises(NarratorUnavailableError, match="failed 3 clips in a row"):
        guard.add([rec("f", True)])
    guard.flush()
    assert [r["key"] for r in sink.got] == ["a", "b", "c"]  # d, e, f are redone by the rerun


# ----------------------------------------------------------------------------- malformed / empty replies
def test_malformed_and_empty_replies_are_retried():
    server = ChatServer(replies=["<html>502 from a proxy</html>",
                                 json.dumps({"choices": [{"message": {"content": "   "}}]})])
    try:
        nar = create_narrator("openai", validation=Validation(), base_url=server.url, model="m", max_retries=3,
                              backoff_s=0.0, max_concurrency=1)
        [r] = nar.narrate_batch([NarrationRequest("k", "#C C lifts the block", {"events": []}, 1.0)])
        nar.close()
    finally:
        server.close()
    assert r.ok and r.texts == ["C lifts the red block to the right."]
    assert r.attempts == 3 and server.calls == 3  # malformed, empty, then a valid answer

    always_empty = ChatServer(replies=[json.dumps({"choices": [{"message": {"content": ""}}]})] * 5)
    try:
        nar = create_narrator("openai", base_url=always_empty.url, model="m", max_retries=2, backoff_s=0.0)
        [r] = nar.narrate_batch([NarrationRequest("k", "#C C lifts the block", {"events": []}, 1.0)])
        nar.close()
    finally:
        always_empty.close()
    assert not r.ok and r.error == "invalid answer: empty answer" and r.attempts == 3
    assert not r.transport_error  # the server answered: not an outage


# ----------------------------------------------------------------------------- renarrate
def test_renarrate_uses_the_stored_dynamics_without_the_detector(hod_corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["run", *run_args(hod_corpus, out)]) == 0
    assert main(["merge", f"out={out}"]) == 0
    old = _records(out)

    def no_detector(*a, **k):
        raise AssertionError("renarrate must not build a detector")

    monkeypatch.setattr("egohod.hod.detectors.create_detector", no_detector)
    monkeypatch.setattr("egohod.hod.pipeline.create_detector", no_detector)
    assert main(["renarrate", f"out={out}", "narrator.pattern='{narration}. {details}'", "progress=false"]) == 0
    new = _records(out)  # merged again
    assert set(new) == set(old)
    for k, r in old.items():
        if r["dynamics"] is None:  # failed before narrating: untouched
            assert new[k] == r
            continue
        assert new[k]["dynamics"] == r["dynamics"] and new[k]["detections"] == r["detections"]
        assert new[k]["timing"]["detect"] == r["timing"]["detect"] and new[k]["status"] == "ok"
        assert new[k]["narrations"] != r["narrations"]
    assert new["a0"]["narrations"] == ["C carries the red block. C's right hand holds the red block and moves it right."]
    hod_csv = (out / "hod.csv").read_text()
    assert "C carries the red block. C's right hand" in hod_csv
    # the output now records the new narrator, so a plain `run` with the old one is refused
    assert "{narration}. {details}" in (out / SHARD / "config.yaml").read_text()
    capsys.readouterr()
    monkeypatch.undo()
    assert main(["run", *run_args(hod_corpus, out)]) == 2
    assert "narrator.pattern" in capsys.readouterr().err


def test_an_interrupted_renarrate_leaves_the_old_records(hod_corpus, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", *run_args(hod_corpus, out)]) == 0
    before = _part_lines(out)

    from egohod.hod.narrators import template

    def boom(self, requests):
        raise KeyboardInterrupt

    monkeypatch.setattr(template.TemplateNarrator, "narrate_batch", boom)
    with pytest.raises(KeyboardInterrupt):
        main(["renarrate", f"out={out}", "narrator.pattern='{narration}. {details}'", "progress=false"])
    assert _part_lines(out) == before and not (out / SHARD / "renarrate.tmp").exists()
    monkeypatch.undo()
    assert main(["renarrate", f"out={out}", "narrator.pattern='{narration}. {details}'", "progress=false"]) == 0
    assert _part_lines(out) != before


# ----------------------------------------------------------------------------- unreadable chunk
def test_an_unreadable_chunk_fails_only_the_clips_that_overlap_it(tmp_path):
    from egohod.data.video import write_video

    videos = tmp_path / "videos"
    frames = np.stack([draw_frame(i / FPS, "right") for i in range(int(3 * CHUNK * FPS))])
    per = int(CHUNK * FPS)
    for c in range(3):
        write_video(videos / "vidE" / f"{c:04d}.mp4", frames[c * per:(c + 1) * per], FPS, crf=12)
    (videos / "vidE" / "0000.mp4").write_bytes(b"not a video" * 50)  # the first chunk is unreadable
    spans = [(0.2, 1.5), (1.0, 2.5), (2.2, 3.8), (2.5, 4.5), (4.2, 5.8), (3.0, 6.2)]  # 2 touch chunk 0
    clips = tmp_path / "clips.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text", "uid"])
        for i, (s, e) in enumerate(spans):
            w.writerow(["vidE", s, e, "#C C carries the red block", f"e{i}"])
    out = tmp_path / "out"
    assert main(["run", *run_args({"clips": clips, "videos": videos}, out)]) == 0
    assert main(["merge", f"out={out}"]) == 0
    recs = _records(out)
    failed = sorted(k for k, r in recs.items() if r["status"] != "ok")
    assert failed == ["e0", "e1"]
    assert all("0000.mp4" in recs[k]["reason"] for k in failed)
    assert recs["e3"]["dynamics"]["hands"]["right"]["direction"] == "right"
