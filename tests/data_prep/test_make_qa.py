"""mqa-make-qa against a local OpenAI-compatible server started here, whose canned replies include malformed JSON,
refusals, wrong answers, a reply slower than the client's timeout, HTTP 429 and 500: retries with backoff, content
re-asks, validation, rejects with reasons, the concurrency bound, and a re-run that pays only for what failed."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_prep.make_qa import main, rejects_file
from megatron_qwen_audio.text.tags import build_sequence

VALID = {"question": "What do you hear?", "answer": "{answer}"}
# label fragment -> the replies of successive requests (a status code int sends that HTTP error; ("slow", text) answers
# after the client has timed out); the last entry repeats
SCRIPT = {
    "A dog barks": [json.dumps({"question": "Which animal is heard?", "answer": "A dog that barks."})],
    "rain on a roof": ['```json\n{"question": "What is the weather?", "answer": "Rain drums on a roof."}\n```'],
    "Sound events: siren": ["Sure! Here is a question about the siren.",
                            json.dumps({"question": "What passes by?", "answer": "A siren wails."})],
    "Speaker emotion: anger": [json.dumps({"question": "How?", "answer": "I'm sorry, I cannot help with that."})],
    "Vocal sound: cough": [json.dumps({"question": "What sound?", "answer": "Someone laughs."})],
    "slow train": [("slow", json.dumps({"question": "What vehicle?", "answer": "A slow train."})),
                   json.dumps({"question": "What vehicle?", "answer": "A slow train."})],
    "busy street": [429, json.dumps({"question": "Where is this?", "answer": "A busy street."})],
    "broken glass": [500, json.dumps({"question": "What broke?", "answer": "Glass broke."})],
    "always failing": [500],
}


class CannedEndpoint(ThreadingHTTPServer):
    """`POST /v1/chat/completions` answering from SCRIPT by the label in the last user message; it counts requests
    per label and the most requests it ever held at once."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.in_flight = self.most_in_flight = 0

    def next_reply(self, label: str):
        fragment = next(fragment for fragment in SCRIPT if fragment in label)
        with self.lock:
            count = self.requests.get(fragment, 0)
            self.requests[fragment] = count + 1
        replies = SCRIPT[fragment]
        return replies[min(count, len(replies) - 1)]


class CannedHandler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        server: CannedEndpoint = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        label = body["messages"][-1]["content"]
        with server.lock:
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            time.sleep(0.05)  # let requests overlap
            reply = server.next_reply(label)
            if isinstance(reply, tuple):
                time.sleep(1.5)  # beyond the client's 1 s timeout
                reply = reply[1]
            if isinstance(reply, int):
                self._send(reply, {"error": {"message": "canned failure", "type": "server_error"}},
                           {"retry-after-ms": "10"} if reply == 429 else {})
            else:
                self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply}}]})
        except BrokenPipeError:  # the client gave up on the slow reply
            pass
        finally:
            with server.lock:
                server.in_flight -= 1

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint():
    server = CannedEndpoint()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _manifest(folder: Path) -> Path:
    caption = {"task": "caption", "text_lang": "en"}
    rows = [{"id": "dog", "audio": "clips/dog.wav", **caption, "text": "A dog barks twice."},
            {"id": "rain", "audio": "clips/rain.wav", **caption, "text": "Steady rain on a roof."},
            {"id": "siren", "audio": "clips/siren.wav", "task": "keyword", "instruction": "event", "text_lang": "en",
             "text": "siren"},
            {"id": "angry", "audio": "clips/angry.wav", "task": "keyword", "instruction": "emotion_recognition",
             "audio_lang": "en", "text_lang": "en", "text": "anger"},
            {"id": "cough", "audio": "clips/cough.wav", "task": "keyword", "instruction": "vocal_classification",
             "text_lang": "en", "text": "cough"},
            {"id": "train", "audio": "long.flac", "start": 3.0, "end": 9.5, "task": "transcribe", "audio_lang": "fr",
             "text_lang": "fr", "text": "Le slow train part."},
            {"id": "street", "audio": "clips/street.wav", **caption, "text": "A busy street at noon."},
            {"id": "glass", "audio": "clips/glass.wav", **caption, "text": "Some broken glass falls."},
            {"id": "fails", "audio": "clips/fails.wav", **caption, "text": "An always failing machine."},
            {"id": "which", "audio": "clips/which.wav", "task": "lid", "audio_lang": "fr"}]
    lines = [json.dumps(row) for row in rows] + ['{"id": "cut", "task": ']
    path = folder / "corpus" / "manifest.jsonl"
    path.parent.mkdir()
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_qa_generation_retries_validates_rejects_and_caches(endpoint, tmp_path, capsys, qwen_tokenizer):
    manifest, out = _manifest(tmp_path), tmp_path / "qa" / "qa.jsonl"
    arguments = ["--manifest", str(manifest), "--out", str(out), "--model", "canned", "--api-key", "none",
                 "--base-url", f"http://127.0.0.1:{endpoint.server_address[1]}/v1", "--concurrency", "3",
                 "--retries", "2", "--timeout", "1", "--attempts", "2"]
    assert main(arguments) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["id"], row["answer"]) for row in rows] == [
        ("dog/qa", "A dog that barks."), ("rain/qa", "Rain drums on a roof."), ("siren/qa", "A siren wails."),
        ("train/qa", "A slow train."), ("street/qa", "A busy street."), ("glass/qa", "Glass broke.")]
    train = rows[3]
    assert (train["start"], train["end"], train["audio_lang"], train["task"]) == (3.0, 9.5, "fr", "qa")
    assert (out.parent / train["audio"]).resolve() == (manifest.parent / "long.flac").resolve()
    assert rows[0]["audio_lang"] == "en" and rows[0]["source"] == {"id": "dog", "label": "A dog barks twice."}
    rejects = {reject["id"]: reject for reject in map(json.loads, rejects_file(out).read_text().splitlines())}
    assert rejects["angry"]["reason"] == "the reply is a refusal (after 2 attempts)"
    assert rejects["cough"]["reason"] == "the answer names none of the label's values (cough) (after 2 attempts)"
    assert rejects["fails"]["reason"].startswith("the endpoint failed after retries: InternalServerError")
    assert rejects["which"]["reason"] == "task lid has no label to ask about"
    assert rejects[None]["line"] == 11 and "invalid JSON" in rejects[None]["reason"]
    assert len(rows) + len(rejects) == 11  # every line is a row or a reject
    first_run = dict(endpoint.requests)
    assert first_run == {"A dog barks": 1, "rain on a roof": 1, "Sound events: siren": 2,  # re-asked once
                         "Speaker emotion: anger": 2, "Vocal sound: cough": 2, "slow train": 2,  # timed out once
                         "busy street": 2, "broken glass": 2, "always failing": 3}  # 1 + 2 HTTP retries
    assert 2 <= endpoint.most_in_flight <= 3
    capsys.readouterr()

    assert main(arguments) == 0  # a re-run asks again only what never got a reply
    assert endpoint.requests == {**first_run, "always failing": 6}
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    # cached: one reply per answered row (6), plus the siren's first reply and both replies of the 2 rows rejected on
    # content; the timed-out request and the failing row's have none
    assert "0 replies received, 11 read from the cache" in capsys.readouterr().out

    chat_out = tmp_path / "qa" / "chat.jsonl"  # the same replies as ChatML samples, all from the cache
    assert main([*arguments, "--format", "chat", "--out", str(chat_out), "--cache", f"{out}.cache"]) == 0
    chats = [json.loads(line) for line in chat_out.read_text().splitlines()]
    assert [chat["id"] for chat in chats] == ["dog/chat", "rain/chat", "siren/chat", "street/chat", "glass/chat"]
    for sample in [*rows, *chats]:  # valid samples for the shard builder (a 3 s clip stands in for each)
        build_sequence(sample, [300], [3.0], qwen_tokenizer)
    assert chats[0]["messages"] == [
        {"role": "user", "content": [{"audio": rows[0]["audio"]}, {"text": "Which animal is heard?"}]},
        {"role": "assistant", "content": "A dog that barks."}]
    chat_rejects = {reject["id"]: reject["reason"] for reject in map(json.loads,
                                                                     rejects_file(chat_out).read_text().splitlines())}
    assert chat_rejects["train"].startswith("a segment (start/end) cannot be a chat audio item")
    assert endpoint.requests["always failing"] == 9 and endpoint.requests["A dog barks"] == 1


def test_multi_audio_conversations_group_consecutive_rows(endpoint, tmp_path, qwen_tokenizer):
    manifest, out = _manifest(tmp_path), tmp_path / "pairs.jsonl"
    assert main(["--manifest", str(manifest), "--out", str(out), "--model", "canned", "--api-key", "none",
                 "--base-url", f"http://127.0.0.1:{endpoint.server_address[1]}/v1", "--format", "chat",
                 "--clips", "2", "--retries", "0", "--timeout", "5"]) == 0
    chats = [json.loads(line) for line in out.read_text().splitlines()]
    # askable whole-file rows in order: dog, rain | siren, angry | cough, street | glass, fails (the segment row and
    # the lid row are rejects); the endpoint answers a pair by the first label it recognises
    assert [chat["id"] for chat in chats] == ["dog+rain/chat", "siren+angry/chat"]
    user = chats[0]["messages"][0]["content"]
    assert [item.get("text") for item in user] == [None, None, "Which animal is heard?"]
    assert chats[0]["source"] == [{"id": "dog", "label": "A dog barks twice."},
                                  {"id": "rain", "label": "Steady rain on a roof."}]
    rejects = {reject["id"]: reject["reason"] for reject in map(json.loads, rejects_file(out).read_text().splitlines())}
    assert rejects["cough"] == rejects["street"] == ("the answer agrees with none of the clips' labels "
                                                     "(after 2 attempts)")
    assert rejects["glass"] == rejects["fails"]  # a 500 with no HTTP retries left rejects both clips of the pair
    assert rejects["glass"].startswith("the endpoint failed after retries: InternalServerError")
    for chat in chats:
        build_sequence(chat, [300, 300], [3.0, 3.0], qwen_tokenizer)


def test_a_missing_model_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MQA_QA_MODEL", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["--manifest", str(_manifest(tmp_path)), "--out", str(tmp_path / "qa.jsonl"), "--api-key", "x"])
    assert exit_info.value.code == 2 and "--model is required" in capsys.readouterr().err
