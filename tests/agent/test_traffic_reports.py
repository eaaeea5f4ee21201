from __future__ import annotations

from pymirrord.agent.traffic_reports import TrafficReports
from pymirrord.protocol.agent_to_session import (
    SERVED_LISTED,
    ConnectionTraffic,
    SeenRequest,
    TrafficReport,
)


def test_bytes_add_up_by_connection_and_only_the_last_requests_are_described() -> None:
    reports = TrafficReports()
    assert not reports
    for _ in range(3):
        reports.moved(1, 7, True, 100)
    reports.moved(1, 7, False, 40)
    reports.moved(1, 8, True, 5)
    for index in range(SERVED_LISTED + 5):
        reports.request(1, 7, "GET", f"/{index}")
    assert reports
    report = reports.take()[1]
    assert report.connections == (ConnectionTraffic(7, 300, 40), ConnectionTraffic(8, 5, 0))
    assert report.requests == SERVED_LISTED + 5
    assert [seen.target for seen in report.last] == [f"/{index}" for index in range(5, SERVED_LISTED + 5)]
    assert not reports and reports.take() == {}, "what was reported is not reported again"


def test_one_sessions_report_can_be_taken_alone() -> None:
    reports = TrafficReports()
    reports.moved(1, 7, True, 10)
    reports.request(2, 9, "POST", "/x")
    assert reports.take(1) == {1: TrafficReport((ConnectionTraffic(7, 10, 0),), 0, ())}
    assert reports.take(1) == {}
    assert reports.take() == {2: TrafficReport((), 1, (SeenRequest(9, "POST", "/x"),))}


def test_a_session_that_left_is_told_nothing() -> None:
    reports = TrafficReports()
    reports.moved(1, 7, True, 10)
    reports.forget(1)
    reports.forget(3)
    assert reports.take() == {}
