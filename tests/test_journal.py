"""The request journal: bounded by count and body size, bodies given back parsed."""

from __future__ import annotations

import json

from emulator.journal import Entry, Journal

from .conftest import Client


def record(
    journal: Journal, path: str = "/p", key: str | None = "aio_a", body: str | None = None,
    json: bool = False,
) -> None:  # fmt: skip
    journal.append(
        Entry(journal.next_seq(), "POST", path, "", key, body, json, 200, None, None, None,
              0.0, 0.0, 0.001)
    )  # fmt: skip


def test_json_bodies_are_stored_as_text_and_read_back_parsed() -> None:
    journal = Journal()
    record(journal, body='{"prompt": "a fox", "n": [1, 2]}', json=True)
    record(journal, body="not json {")
    first, second = journal.entries()
    assert first["body"] == {"prompt": "a fox", "n": [1, 2]} and "_json" not in first
    assert second["body"] == "not json {"
    assert list(journal) == [first, second]
    assert journal.find(1).as_dict() == first and journal.find(3) is None


def test_the_journal_drops_its_oldest_entries_past_its_count_or_body_budget() -> None:
    journal = Journal(maxlen=3, max_body_chars=100)
    for i in range(5):
        record(journal, path=f"/{i}")
    assert [e["path"] for e in journal.entries()] == ["/2", "/3", "/4"]
    body = json.dumps({"prompt": "x" * 30})  # 44 characters
    for i in range(5, 8):
        record(journal, path=f"/{i}", body=body, json=True)
    assert [e["path"] for e in journal.entries()] == ["/6", "/7"]  # 2 bodies fit in 100 chars
    record(journal, path="/huge", body=json.dumps({"prompt": "x" * 500}), json=True)
    assert [e["path"] for e in journal.entries()] == ["/huge"]  # the newest entry always stays
    assert journal.seq == 9 and journal.oldest_seq == 9


def test_an_answer_is_kept_as_text_read_back_parsed_and_counted_in_the_budget() -> None:
    journal = Journal(max_body_chars=100)
    answer = json.dumps({"reply": "x" * 60, "credits_consumed": 1})  # 83 characters
    journal.append(
        Entry(journal.next_seq(), "POST", "/chat", "", "aio_a", None, False, 200, None, None,
              None, 0.0, 0.0, 0.001, "chat", response=answer)
    )  # fmt: skip
    (entry,) = journal.entries()
    assert entry["kind"] == "chat" and entry["response"] == json.loads(answer)
    stored = journal.stored()
    assert stored[0]["response"] == answer  # text in a state file, as bodies are
    restored = Journal()
    restored.restore(stored, seq=1)
    assert restored.entries() == [entry]
    parsed = [{**stored[0], "response": json.loads(answer)}]  # a state file written by hand
    restored.restore(parsed, seq=1)
    assert restored.entries() == [entry]
    record(journal)
    assert [e["seq"] for e in journal.entries()] == [1, 2]  # no body: the answer alone fits
    record(journal, body=json.dumps({"prompt": "y" * 30}), json=True)
    assert [e["seq"] for e in journal.entries()] == [2, 3]  # answer + body are past 100 chars
    assert "response" not in journal.entries()[0]


def test_entries_filter_by_key_path_and_seq() -> None:
    journal = Journal()
    for i in range(6):
        record(journal, path=f"/{i % 2}", key=f"aio_{i % 3}")
    assert [e["seq"] for e in journal.entries(key="aio_0")] == [1, 4]
    assert [e["seq"] for e in journal.entries(path="/1")] == [2, 4, 6]
    assert [e["seq"] for e in journal.entries(since=4)] == [5, 6]
    assert [e["seq"] for e in journal.entries(path="/0", since=2)] == [3, 5]


def test_a_journaled_create_body_reads_back_as_sent(client: Client) -> None:
    client.create(prompt="a fox, \u00e9t\u00e9 \U0001f98a", num_images=None)
    (logged,) = client.get("/_emulator/requests").json()["requests"]
    assert logged["body"] == {"model": "cogview-4", "prompt": "a fox, \u00e9t\u00e9 \U0001f98a",
                              "num_images": None}  # fmt: skip
