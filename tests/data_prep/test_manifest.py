"""Manifest reading: line numbers, audio path resolution and order, malformed-line rejects, chunk offsets."""
import json
from pathlib import Path

from data_prep.manifest import ManifestReject, ManifestRow, read_manifest, scan_manifest

CHAT = {
    "id": "chat-1",
    "task": "chat",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"audio": "a.wav"}, {"text": "and"}, {"audio": "/abs/b.flac"}]},
        {"role": "assistant", "content": "Two clips."},
        {"role": "user", "content": [{"text": "one more"}, {"audio": "sub/c.wav"}]},
        {"role": "assistant", "content": "Three."},
    ],
}


def _write(path, lines: list[str], trailing_newline: bool = True):
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
    return path


def test_rows_keep_their_line_numbers_and_resolve_audio_against_the_manifest_folder(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    manifest = _write(folder / "m.jsonl", [
        json.dumps({"id": "a", "task": "transcribe", "audio": "wav/a.wav", "text": "x"}),
        json.dumps(CHAT),
        json.dumps({"id": "t", "task": "text", "messages": [{"role": "user", "content": "hi"}]}),
    ])
    rows = list(read_manifest(manifest))
    assert [row.line for row in rows] == [1, 2, 3]
    assert all(isinstance(row, ManifestRow) for row in rows)
    assert rows[0].audio_paths == (folder / "wav/a.wav",)
    assert rows[1].audio_paths == (folder / "a.wav", Path("/abs/b.flac"), folder / "sub/c.wav")
    assert rows[2].audio_paths == ()
    assert rows[1].sample == CHAT  # kept exactly as written


def test_malformed_lines_become_rejects_with_reasons(tmp_path):
    manifest = _write(tmp_path / "m.jsonl", [
        '{"id": "ok", "task": "lid", "audio": "a.wav"}',
        '{"id": "broken", "task": ',
        "[1, 2, 3]",
        '{"task": "lid"}',
        '{"id": "", "task": "lid"}',
        '{"id": "no-task"}',
        "",
        '{"id": "bad-audio", "task": "lid", "audio": 7}',
        '{"id": "bad-messages", "task": "chat", "messages": {"role": "user"}}',
        '{"id": "bad-item", "task": "chat", "messages": [{"role": "user", "content": [{"audio": null}]}]}',
    ], trailing_newline=False)
    results = list(read_manifest(manifest))
    assert len(results) == 10  # the last line has no newline and still counts
    assert isinstance(results[0], ManifestRow)
    rejects = {result.line: result for result in results[1:]}
    assert all(isinstance(reject, ManifestReject) for reject in rejects.values())
    expected = {
        2: (None, "invalid JSON"),
        3: (None, "not a JSON object (got list)"),
        4: (None, "field 'id'"),
        5: (None, "field 'id'"),
        6: ("no-task", "field 'task'"),
        7: (None, "empty line"),
        8: ("bad-audio", "field 'audio'"),
        9: ("bad-messages", "field 'messages'"),
        10: ("bad-item", "field 'messages[0].content[0].audio'"),
    }
    for line, (sample_id, reason) in expected.items():
        assert rejects[line].id == sample_id, line
        assert reason in rejects[line].reason, (line, rejects[line].reason)


def test_undecodable_bytes_are_a_reject_not_a_crash(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"id": "a", "task": "lid"}\n{"id": "\xff\xfe", "task": "lid"}\n')
    results = list(read_manifest(manifest))
    assert isinstance(results[1], ManifestReject) and "UTF-8" in results[1].reason


def test_chunk_offsets_let_a_reader_start_at_any_chunk(tmp_path):
    lines = [json.dumps({"id": f"s{i}", "task": "text", "note": "é" * (i % 4)}) for i in range(11)]
    manifest = _write(tmp_path / "m.jsonl", lines)
    layout = scan_manifest(manifest, lines_per_chunk=4)
    assert layout.lines == 11
    assert len(layout.chunk_offsets) == 3  # lines 1-4, 5-8, 9-11
    for chunk, offset in enumerate(layout.chunk_offsets):
        first = chunk * 4 + 1
        rows = list(read_manifest(manifest, offset, first, max_lines=4))
        assert [row.line for row in rows] == list(range(first, min(first + 4, 12)))
        assert [row.sample["id"] for row in rows] == [f"s{line - 1}" for line in range(first, min(first + 4, 12))]


def test_manifest_hash_changes_with_content(tmp_path):
    first = scan_manifest(_write(tmp_path / "a.jsonl", ['{"id": "a", "task": "text"}']), 10)
    second = scan_manifest(_write(tmp_path / "b.jsonl", ['{"id": "b", "task": "text"}']), 10)
    assert first.sha256 != second.sha256
