"""MQTT topic scheme."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import TopicError
from protocol.topics import (
    Channel,
    Scope,
    alert_topic,
    parse_topic,
    samples_topic,
    shared_subscription,
    subscription,
    window_topic,
)

ids = st.from_regex(r"\A[A-Za-z0-9_.\-]{1,64}\Z")


@given(ids)
def test_built_topics_parse_back(ident: str) -> None:
    for build, scope, channel in [
        (samples_topic, Scope.DEVICE, Channel.SAMPLES),
        (window_topic, Scope.PATIENT, Channel.WINDOW),
        (alert_topic, Scope.PATIENT, Channel.ALERT),
    ]:
        parsed = parse_topic(build(ident))
        assert (parsed.scope, parsed.ident, parsed.channel) == (scope, ident, channel)


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "x" * 65, "dev ice", "é", "dev-1\n", "\ndev-1", "dev\x00"])
def test_ids_that_could_escape_their_branch_are_refused(bad: str) -> None:
    with pytest.raises(TopicError):
        samples_topic(bad)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ecgstream/v2/device/d1/samples", "version 'v2' is not supported"),
        ("other/v1/device/d1/samples", "not an ecgstream topic"),
        ("ecgstream/v1/device/d1/alert", "no alert channel for a device"),
        ("ecgstream/v1/device/d1/samples/extra", "not an ecgstream topic"),
    ],
)
def test_foreign_topics_are_rejected_clearly(name: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        parse_topic(name)


def test_subscriptions_and_shared_subscriptions() -> None:
    assert subscription(Scope.PATIENT, Channel.ALERT) == "ecgstream/v1/patient/+/alert"
    assert shared_subscription("cloud", subscription("patient", "window")) == "$share/cloud/ecgstream/v1/patient/+/window"


def test_a_topic_whose_id_ends_in_a_newline_does_not_parse() -> None:
    with pytest.raises(TopicError):
        parse_topic("ecgstream/v1/patient/pat-1\n/alert")
