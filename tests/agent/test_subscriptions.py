from __future__ import annotations

from pymirrord.agent.subscriptions import AddRedirect, RemoveRedirect, Route, Subscriptions
from pymirrord.protocol.http_types import HttpFilterSpec
from pymirrord.protocol.types import Mode

A, B, C = 1, 2, 3


def test_first_subscriber_adds_the_redirect_and_later_ones_do_not() -> None:
    subs = Subscriptions()
    first = subs.subscribe(A, 80, Mode.MIRROR)
    assert first.error is None
    assert first.actions == (AddRedirect(80),)
    second = subs.subscribe(B, 80, Mode.MIRROR)
    assert second.error is None
    assert second.actions == ()
    assert subs.ports == (80,)


def test_last_subscriber_leaving_removes_the_redirect() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 80, Mode.MIRROR)
    subs.subscribe(B, 80, Mode.STEAL)
    assert subs.unsubscribe(A, 80) == ()
    assert subs.unsubscribe(B, 80) == (RemoveRedirect(80),)
    assert subs.ports == ()
    assert subs.route(80) == Route(None, ())


def test_unsubscribing_what_was_never_subscribed_does_nothing() -> None:
    subs = Subscriptions()
    assert subs.unsubscribe(A, 80) == ()
    subs.subscribe(B, 80, Mode.MIRROR)
    assert subs.unsubscribe(A, 80) == ()
    assert subs.ports == (80,)


def test_route_names_the_stealer_and_the_mirrors() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 80, Mode.MIRROR)
    subs.subscribe(B, 80, Mode.STEAL)
    subs.subscribe(C, 80, Mode.MIRROR)
    route = subs.route(80)
    assert route == Route(B, (A, C))
    assert route.subscribed
    assert not subs.route(81).subscribed


def test_only_one_session_may_steal_a_port() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 8080, Mode.STEAL)
    outcome = subs.subscribe(B, 8080, Mode.STEAL)
    assert outcome.error is not None
    assert "8080" in outcome.error
    assert "already stolen" in outcome.error
    assert outcome.actions == ()
    # The refused session got nothing, and mirroring stays possible.
    assert subs.mode_of(B, 8080) is None
    assert subs.subscribe(B, 8080, Mode.MIRROR).error is None
    assert subs.route(8080) == Route(A, (B,))


def test_resubscribing_replaces_the_mode() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 80, Mode.MIRROR)
    assert subs.subscribe(A, 80, Mode.STEAL) == subs.subscribe(A, 80, Mode.STEAL)
    assert subs.route(80) == Route(A, ())
    subs.subscribe(A, 80, Mode.MIRROR)
    assert subs.route(80) == Route(None, (A,))
    # The stealer moving to mirror frees the port for another stealer.
    assert subs.subscribe(B, 80, Mode.STEAL).error is None


def test_the_stealer_may_subscribe_again_in_steal_mode() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 80, Mode.STEAL)
    outcome = subs.subscribe(A, 80, Mode.STEAL)
    assert outcome.error is None
    assert outcome.actions == ()


def test_invalid_ports_are_refused() -> None:
    subs = Subscriptions()
    for port in (0, 65536, 10**9):
        outcome = subs.subscribe(A, port, Mode.MIRROR)
        assert outcome.error is not None
        assert str(port) in outcome.error
    assert subs.ports == ()


def test_session_gone_drops_every_subscription_of_that_session() -> None:
    subs = Subscriptions()
    subs.subscribe(A, 80, Mode.STEAL)
    subs.subscribe(A, 81, Mode.MIRROR)
    subs.subscribe(B, 81, Mode.MIRROR)
    subs.subscribe(A, 82, Mode.MIRROR)
    actions = subs.session_gone(A)
    assert set(actions) == {RemoveRedirect(80), RemoveRedirect(82)}
    assert subs.ports == (81,)
    assert subs.route(81) == Route(None, (B,))
    assert subs.session_gone(A) == ()


def test_handover_is_routed_only_to_a_stealer_that_asked_for_it_and_only_without_mirrors() -> None:
    subs = Subscriptions()
    subs.subscribe(1, 80, Mode.STEAL, handover=True)
    assert subs.route(80) == Route(1, (), handover=True)
    subs.subscribe(2, 80, Mode.MIRROR)
    assert subs.route(80) == Route(1, (2,), handover=False), "mirrors need the bytes: no handover"
    subs.unsubscribe(2, 80)
    subs.subscribe(1, 80, Mode.STEAL, handover=False)
    assert subs.route(80).handover is False


def test_route_follows_every_change_of_subscriptions() -> None:
    # route is asked once per request on a filtered port and remembers its answers: each change must show.
    subs = Subscriptions()
    assert subs.route(80) == Route(None, ())
    subs.subscribe(A, 80, Mode.STEAL)
    assert subs.route(80).stealer == A
    subs.subscribe(B, 80, Mode.MIRROR)
    assert subs.route(80).mirrors == (B,)
    subs.subscribe(B, 80, Mode.MIRROR, http_filter=HttpFilterSpec(header="^x: 1$"))
    assert [sub.session for sub in subs.route(80).http] == [A, B]
    subs.unsubscribe(B, 80)
    assert subs.route(80) == Route(A, ())
    subs.session_gone(A)
    assert subs.route(80) == Route(None, ())


def captured(subs: Subscriptions) -> tuple[int, ...]:
    """The captured ports now (a call, so that a type checker does not carry one answer over to the next)."""
    return subs.captured_ports


def test_with_capture_a_port_only_mirrored_is_captured_and_redirected_only_while_stolen_or_filtered() -> None:
    subs = Subscriptions(capture_mirrors=True)
    assert subs.subscribe(1, 80, Mode.MIRROR).actions == ()
    assert captured(subs) == (80,)
    assert subs.subscribe(2, 80, Mode.STEAL).actions == (AddRedirect(80),)
    assert captured(subs) == ()
    assert subs.unsubscribe(2, 80) == (RemoveRedirect(80),)
    assert captured(subs) == (80,)
    filtered = HttpFilterSpec(header="^x-user: me$")
    assert subs.subscribe(3, 80, Mode.MIRROR, http_filter=filtered).actions == (AddRedirect(80),)
    assert captured(subs) == ()
    assert subs.session_gone(3) == (RemoveRedirect(80),)
    assert subs.unsubscribe(1, 80) == ()
    assert captured(subs) == ()


def test_without_capture_nothing_is_captured() -> None:
    subs = Subscriptions()
    assert subs.subscribe(1, 80, Mode.MIRROR).actions == (AddRedirect(80),)
    assert captured(subs) == ()
