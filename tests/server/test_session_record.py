from __future__ import annotations

from pymirrord.server.session_record import LAST_REQUESTS, SessionRecord


def test_counts_events_and_keeps_the_last_requests() -> None:
    record = SessionRecord("s1", "netns/demo", "steal", None)
    assert record.note_ready()["kind"] == "ready"
    assert record.note_layer(10, 1)["connected"] is True
    record.note_port(80, "steal")
    record.note_connection(1, 80, "steal", "10.0.0.2:5000")
    for index in range(LAST_REQUESTS + 5):
        event = record.note_request(1, 80, "steal", method="GET", path=f"/{index}", matched=None)
    assert event["path"] == f"/{LAST_REQUESTS + 4}"
    summary = record.to_json()
    assert summary["ports"] == [{"port": 80, "mode": "steal"}]
    assert summary["connections"] == {"mirror": 0, "steal": 1}
    assert summary["requests"]["steal"] == LAST_REQUESTS + 5
    assert len(summary["lastRequests"]) == LAST_REQUESTS
    record.note_unlisted_requests("steal", 1000)
    assert record.to_json()["requests"]["steal"] == LAST_REQUESTS + 1005
    assert list(record.to_json()["lastRequests"]) == summary["lastRequests"], "counted, not listed"
    assert summary["processes"] == [10]
    assert record.note_layer_gone(10) is not None and record.note_layer_gone(10) is None
    assert record.note_ended("bye") == {"sessionId": "s1", "kind": "ended", "reason": "bye"}


def test_the_names_of_the_targets_variables_are_shown_never_their_values() -> None:
    record = SessionRecord("s2", "netns/demo", "mirror", None)
    assert record.to_json()["remoteEnv"] == []
    event = record.note_environment(("FEATURE_X", "DATABASE_URL"))
    assert event == {"sessionId": "s2", "kind": "environment", "remoteEnv": ["DATABASE_URL", "FEATURE_X"]}
    assert record.to_json()["remoteEnv"] == ["DATABASE_URL", "FEATURE_X"]
