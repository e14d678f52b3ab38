"""Escalations reach staff away from the screen: a signed webhook, e-mail through SMTP and an ntfy-style
push topic, routed per role, priority and level, retried, counted, audited, and listed in the alert's
detail. Real receivers: an aiohttp server on a free port of 127.0.0.1 (webhook and push topic) and an
aiosmtpd SMTP sink; the store runs on SQLite and on PostgreSQL (``tests/cloud/conftest.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.metrics import ApiMetrics
from cloud.config import ConfigError, EscalationConfig, parse_settings
from cloud.escalation import DeliveryWorker, Escalator, build_channels
from cloud.escalation.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from cloud.service import ServiceInfo, run_service
from cloud.store import Store
from tests.cloud.api_support import CLINICIAN, fast_settings, make_api, until
from tests.cloud.conftest import make_alert

S = 1_000_000  # µs
SECRET = "webhook-shared-secret-1"
TOKEN = "push-token-1"
ENV = {"TEST_WEBHOOK_SECRET": SECRET, "TEST_PUSH_TOKEN": TOKEN}


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


# -- the receivers ----------------------------------------------------------------------------------

@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A local HTTP server: records every POST; a path in ``fail`` answers 503 that many times first
    (``-1``: always)."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(request.path, dict(request.headers), await request.read()))
        left = self.fail.get(request.path, 0)
        if left:
            self.fail[request.path] = left - 1 if left > 0 else left
            return web.Response(status=503, text="busy")
        return web.Response(status=200, text="ok")

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    rec = HttpReceiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.base = f"http://{host}:{port}"
    yield rec
    await runner.cleanup()


class MailSink:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append((envelope, message_from_bytes(content)))
        return "250 OK"


@pytest.fixture
async def smtp_sink() -> AsyncIterator[tuple[MailSink, int]]:
    sink = MailSink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(sink, hostname="sink.test"),
                                                             "127.0.0.1", 0)
    yield sink, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


# -- helpers --------------------------------------------------------------------------------------

def escalation_config(channels: str, *, roles: str = "") -> EscalationConfig:
    """``[escalation]`` with ``channels`` (TOML array-of-tables text) and quick retries."""
    text = f"[escalation]\nhigh_s = 60\nmedium_s = 180\nlow_s = 600\n{roles}\n{channels}"
    return parse_settings(text, env={}).escalation


def webhook(receiver: HttpReceiver, name: str = "hook", path: str = "/hook", extra: str = "") -> str:
    return (f'[[escalation.channels]]\nname = "{name}"\nkind = "webhook"\nurl = "{receiver.base}{path}"\n'
            f'secret_env = "TEST_WEBHOOK_SECRET"\nbackoff_s = 2\n{extra}\n')


def push(receiver: HttpReceiver, name: str = "phone", path: str = "/ward-3", extra: str = "") -> str:
    return (f'[[escalation.channels]]\nname = "{name}"\nkind = "push"\nurl = "{receiver.base}{path}"\n'
            f'token_env = "TEST_PUSH_TOKEN"\ntags = ["ecg"]\n{extra}\n')


@pytest.fixture
async def timed(store: Store) -> AsyncIterator[tuple[Store, Clock]]:
    clock = Clock(store.clock())
    store.clock = clock
    yield store, clock


async def escalate(store: Store, clock: Clock, config: EscalationConfig, seconds: float = 60) -> None:
    clock.now += int(seconds * S)
    await Escalator(store, config).check_once()


# -- channels -------------------------------------------------------------------------------------

async def test_webhook_posts_signed_json_that_verifies_with_the_shared_secret(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    config = escalation_config(webhook(receiver))
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    await store.add_patient("pat-1", "Ada Lovelace")
    vt = make_alert("pat-1", priority="high")
    await store.store_alert(vt)
    assert await worker.run_once() == []                    # raised, not yet escalated: nobody paged
    await escalate(store, clock, config)
    [done] = await worker.run_once()
    assert (done.status, done.attempts, done.level, done.channel) == ("delivered", 1, 1, "hook")

    [post] = receiver.at("/hook")
    assert post.headers["Content-Type"] == "application/json"
    assert verify(SECRET.encode(), post.body, post.headers[TIMESTAMP_HEADER], post.headers[SIGNATURE_HEADER])
    assert not verify(b"another secret", post.body, post.headers[TIMESTAMP_HEADER], post.headers[SIGNATURE_HEADER])
    assert not verify(SECRET.encode(), post.body.replace(b"pat-1", b"pat-2"), post.headers[TIMESTAMP_HEADER],
                      post.headers[SIGNATURE_HEADER])      # a tampered body fails
    ts = int(post.headers[TIMESTAMP_HEADER])
    assert not verify(SECRET.encode(), post.body, post.headers[TIMESTAMP_HEADER], post.headers[SIGNATURE_HEADER],
                      now_s=ts + 3600)                      # a replay an hour later fails
    body = json.loads(post.body)
    assert post.headers[DELIVERY_HEADER] == str(done.id) == str(body["delivery_id"])
    assert (body["event"], body["patient_id"], body["patient_name"], body["alert_type"], body["priority"],
            body["level"], body["alert_id"]) == ("escalated", "pat-1", "Ada Lovelace", "vt", "high", 1, vt.alert_id)
    assert "Ada Lovelace" in body["title"] and "HIGH" in body["title"]

    [entry] = [e for e in await store.audit_log(target=f"episode:{vt.alert_id}") if e.action == "escalation_delivered"]
    assert (entry.user, entry.details["channel"], entry.details["level"]) == ("system", "hook", 1)
    assert await worker.run_once() == [] and len(receiver.requests) == 1     # delivered once, not again


async def test_email_arrives_with_patient_alarm_and_priority(
        timed: tuple[Store, Clock], smtp_sink: tuple[MailSink, int]) -> None:
    store, clock = timed
    sink, port = smtp_sink
    config = escalation_config(
        f'[[escalation.channels]]\nname = "mail"\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
        'security = "none"\nfrom_addr = "ecgstream@hospital.test"\nto = ["charge.nurse@hospital.test", '
        '"oncall@hospital.test"]\n')
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ={}))
    await store.add_patient("pat-7", "Grace Hopper")
    await store.store_alert(make_alert("pat-7", priority="medium", alert_type="af", family="af"))
    await escalate(store, clock, config, 180)
    [done] = await worker.run_once()
    assert done.status == "delivered" and done.target == "charge.nurse@hospital.test, oncall@hospital.test"

    [(envelope, mail)] = sink.messages
    assert envelope.mail_from == "ecgstream@hospital.test"
    assert sorted(envelope.rcpt_tos) == ["charge.nurse@hospital.test", "oncall@hospital.test"]
    subject = str(make_header(decode_header(mail["Subject"])))
    assert "Grace Hopper" in subject and "af" in subject and "MEDIUM" in subject
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "Patient: Grace Hopper (pat-7)" in text
    assert "Medium-priority clinical alarm: af" in text and "escalation level 1" in text


async def test_push_topic_gets_the_text_with_title_priority_tags_and_token(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    config = escalation_config(push(receiver))
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    await store.add_patient("pat-2", "José Núñez")                  # not ASCII: the Title header is encoded
    await store.store_alert(make_alert("pat-2", priority="high", alert_type="asystole", family="asystole"))
    await escalate(store, clock, config)
    [done] = await worker.run_once()
    assert done.status == "delivered" and done.kind == "push"

    [post] = receiver.at("/ward-3")
    text = post.body.decode("utf-8")
    assert "Patient: José Núñez (pat-2)" in text and "asystole" in text
    title = str(make_header(decode_header(post.headers["Title"])))
    assert "José Núñez" in title and "HIGH" in title and "asystole" in title
    assert post.headers["Priority"] == "urgent"
    assert post.headers["Tags"].split(",") == ["rotating_light", "ecg"]
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"


# -- retries and failures -------------------------------------------------------------------------

async def test_a_receiver_failing_twice_then_succeeding_gets_one_delivery_after_three_attempts(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    receiver.fail["/hook"] = 2
    config = escalation_config(webhook(receiver))
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    vt = make_alert("pat-1")
    await store.store_alert(vt)
    await escalate(store, clock, config)
    [first] = await worker.run_once()
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, f"HTTP 503 from {receiver.base}/hook")
    assert await worker.run_once() == []                          # backing off: not due yet
    clock.now += 2 * S                                              # backoff_s = 2
    [second] = await worker.run_once()
    assert (second.status, second.attempts) == ("pending", 2)
    clock.now += 2 * S
    assert await worker.run_once() == []                          # the backoff doubled: 4 s
    clock.now += 2 * S
    [third] = await worker.run_once()
    assert (third.status, third.attempts, third.delivered_us) == ("delivered", 3, clock.now)

    rows = await store.deliveries.for_episode(vt.alert_id)
    assert [(d.status, d.attempts) for d in rows] == [("delivered", 3)]
    assert {r.headers[DELIVERY_HEADER] for r in receiver.at("/hook")} == {str(third.id)}  # one id: de-duplicable
    assert len(receiver.at("/hook")) == 3
    assert worker.counters.as_dict() == {"enqueued": {"hook": 1}, "delivered": {"hook": 1},
                                       "retried": {"hook": 2}, "failed": {}, "cancelled": {}, "lost_claims": 0,
                                       "errors": 0}
    metrics = ApiMetrics()
    metrics.add_source("deliveries", worker.counters.as_dict)
    text = metrics.render().decode()
    assert 'ecgstream_cloud_deliveries_delivered_total{channel="hook"} 1.0' in text
    assert 'ecgstream_cloud_deliveries_retried_total{channel="hook"} 2.0' in text
    assert await store.deliveries.counts() == {"hook": {"delivered": 1}}


async def test_a_receiver_that_always_fails_ends_failed_after_max_attempts_and_is_audited(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    receiver.fail["/down"] = -1
    config = escalation_config(webhook(receiver, path="/down", extra="max_attempts = 3"))
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    vt = make_alert("pat-1")
    await store.store_alert(vt)
    await escalate(store, clock, config)
    outcomes = []
    for _ in range(6):
        outcomes += await worker.run_once()
        clock.now += 10 * S
    assert [(d.status, d.attempts) for d in outcomes] == [("pending", 1), ("pending", 2), ("failed", 3)]
    assert len(receiver.at("/down")) == 3                          # and not one more
    [row] = await store.deliveries.for_episode(vt.alert_id)
    assert (row.status, row.attempts, row.delivered_us) == ("failed", 3, None)
    assert row.last_error == f"HTTP 503 from {receiver.base}/down"
    failed = [e for e in await store.audit_log(target=f"episode:{vt.alert_id}") if e.action == "escalation_failed"]
    assert [(e.user, e.details["channel"], e.details["attempts"], e.details["error"]) for e in failed] == [
        ("system", "hook", 3, row.last_error)]
    assert worker.counters.failed == {"hook": 1} and worker.counters.retried == {"hook": 2}


async def test_an_unreachable_receiver_is_a_failed_try_not_a_crash(timed: tuple[Store, Clock]) -> None:
    store, clock = timed
    config = escalation_config('[[escalation.channels]]\nname = "nowhere"\nkind = "push"\n'
                               'url = "http://127.0.0.1:9/topic"\ntimeout_s = 2\n')
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ={}))
    await store.store_alert(make_alert("pat-1"))
    await escalate(store, clock, config)
    [d] = await worker.run_once()
    assert d.status == "pending" and d.attempts == 1 and "posting to http://127.0.0.1:9/topic" in str(d.last_error)


async def test_an_episode_acknowledged_before_delivery_is_cancelled_not_sent(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    receiver.fail["/hook"] = 1
    config = escalation_config(webhook(receiver))
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    vt = make_alert("pat-1")
    await store.store_alert(vt)
    await escalate(store, clock, config)
    [d] = await worker.run_once()
    assert d.status == "pending"                                    # the first try failed
    await store.acknowledge(vt.alert_id, "dr.osei")
    clock.now += 2 * S
    [d] = await worker.run_once()
    assert (d.status, d.last_error) == ("cancelled", "acknowledged by dr.osei before delivery")
    assert len(receiver.at("/hook")) == 1


# -- routing --------------------------------------------------------------------------------------

async def test_roles_priorities_and_levels_route_each_escalation_to_its_channels(
        timed: tuple[Store, Clock], receiver: HttpReceiver) -> None:
    store, clock = timed
    config = escalation_config(
        push(receiver, "nurse-phone", extra='roles = ["nurse"]\npriorities = ["high", "medium"]')
        + push(receiver, "charge-phone", extra='roles = ["charge_nurse"]')
        + webhook(receiver, "physician-pager", extra='roles = ["physician"]\npriorities = ["high"]')
        + push(receiver, "team-board", extra='on_raise = true\npriorities = ["high"]\nmin_level = 3'),
        roles='level_roles = ["nurse", "charge_nurse", "physician"]')
    worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
    vt = make_alert("pat-1", priority="high")
    af = make_alert("pat-2", priority="medium", alert_type="af", family="af")
    low = make_alert("pat-3", priority="low", alert_type="brady", family="brady")
    for a in (vt, af, low):
        await store.store_alert(a)

    async def routed() -> set[tuple[str, int, str]]:
        await worker.plan_once()
        out = set()
        for episode, rows in (await store.deliveries.for_episodes([vt.alert_id, af.alert_id, low.alert_id])).items():
            out |= {(episode, d.level, d.channel) for d in rows}
        return out

    assert await routed() == {(vt.alert_id, 0, "team-board")}      # raised: only the on_raise channel, high only
    await escalate(store, clock, config, 60)                          # t=60: vt → 1 (nurse)
    assert await routed() - {(vt.alert_id, 0, "team-board")} == {(vt.alert_id, 1, "nurse-phone")}
    await escalate(store, clock, config, 60)                          # t=120: vt → 2 (charge nurse)
    await worker.plan_once()
    await escalate(store, clock, config, 60)                          # t=180: vt → 3 (physician); af → 1 (nurse)
    assert await routed() == {
        (vt.alert_id, 0, "team-board"), (vt.alert_id, 1, "nurse-phone"), (vt.alert_id, 2, "charge-phone"),
        (vt.alert_id, 3, "physician-pager"), (vt.alert_id, 3, "team-board"), (af.alert_id, 1, "nurse-phone")}
    await escalate(store, clock, config, 360)                         # t=540: af → 2 (charge nurse)
    await worker.plan_once()
    await escalate(store, clock, config, 180)                         # t=720: af → 3, low → 1
    await worker.plan_once()
    rows = await store.deliveries.for_episodes([af.alert_id, low.alert_id])
    # af at 3 is for the physician, whose pager takes high only; low at 1 is for the nurse, whose phone
    # takes high and medium only
    assert [(d.level, d.channel) for d in rows[af.alert_id]] == [(1, "nurse-phone"), (2, "charge-phone")]
    assert low.alert_id not in rows
    assert [(await store.get_episode(e.alert_id)).escalation_level for e in (af, low)] == [3, 1]


async def test_two_delivery_loops_on_one_database_send_each_delivery_once(
        migrated_url: str, receiver: HttpReceiver) -> None:
    """Two Stores (as two ``cloud run`` processes would have) plan and send the same escalations at once."""
    async with Store(migrated_url) as a, Store(migrated_url) as b:
        config = escalation_config(webhook(receiver))
        episodes = [make_alert(f"pat-{i}") for i in range(12)]
        for alert in episodes:
            await a.store_alert(alert)
        clock = Clock(a.clock() + 61 * S)
        a.clock = b.clock = clock
        await Escalator(a, config).check_once()
        workers = [DeliveryWorker(s, config, build_channels(config.channels, environ=ENV), batch=4) for s in (a, b)]
        await asyncio.gather(*(w.run_once() for w in workers for _ in range(3)))
        for w in workers:
            await w.run_once()
        rows = await a.deliveries.for_episodes([e.alert_id for e in episodes])
        assert sorted((len(v), v[0].status, v[0].attempts) for v in rows.values()) == [(1, "delivered", 1)] * 12
        assert len(receiver.at("/hook")) == 12
        assert sum(sum(w.counters.delivered.values()) for w in workers) == 12
        assert sum(sum(w.counters.enqueued.values()) for w in workers) == 12


# -- the alert's detail ---------------------------------------------------------------------------

async def test_alert_detail_lists_the_episode_deliveries(migrated_url: str, receiver: HttpReceiver) -> None:
    receiver.fail["/down"] = -1
    async with make_api(migrated_url, fast_settings()) as api:
        store = api.store
        config = escalation_config(push(receiver) + webhook(receiver, path="/down", extra="max_attempts = 1"))
        worker = DeliveryWorker(store, config, build_channels(config.channels, environ=ENV))
        vt = make_alert("pat-1")
        await store.store_alert(vt)
        clock = Clock(store.clock() + 61 * S)
        store.clock = clock
        await Escalator(store, config).check_once()
        await worker.run_once()
        async with api.as_user(CLINICIAN) as c:
            r = await c.get(f"/api/alerts/{vt.alert_id}")
            assert r.status_code == 200, r.text
            deliveries = r.json()["deliveries"]
            listed = await c.get("/api/alerts")
        by_channel = {d["channel"]: d for d in deliveries}
        assert by_channel["phone"] == {
            "channel": "phone", "kind": "push", "target": f"{receiver.base}/ward-3", "level": 1, "priority": "high",
            "status": "delivered", "attempts": 1, "last_error": None, "created_us": clock.now,
            "delivered_us": clock.now}
        hook = by_channel["hook"]
        assert (hook["status"], hook["attempts"], hook["last_error"], hook["delivered_us"]) == (
            "failed", 1, f"HTTP 503 from {receiver.base}/down", None)
        assert TOKEN not in r.text and SECRET not in r.text
        assert all(a["deliveries"] == [] for a in listed.json()["alerts"])   # the list stays light


# -- the service --------------------------------------------------------------------------------

async def test_cloud_run_delivers_an_unacknowledged_alarm_to_the_push_topic(
        tmp_path: Path, receiver: HttpReceiver) -> None:
    """``cloud run`` (in-process) with a push channel: an alarm nobody acknowledges reaches the topic."""
    text = (f'[database]\nurl = "sqlite:///{tmp_path / "cloud.db"}"\n[run]\ningest = false\nmodels = false\n'
            '[http]\nport = 0\n[escalation]\nhigh_s = 0.2\ncheck_interval_s = 0.05\ndelivery_interval_s = 0.05\n'
            + push(receiver))
    settings = parse_settings(text, env={})
    stop = asyncio.Event()
    ready: list[ServiceInfo] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEST_PUSH_TOKEN", TOKEN)
        service = asyncio.create_task(run_service(settings, stop=stop, handle_signals=False, on_ready=ready.append))
        try:
            await until(lambda: ready or service.done(), "the service to start")
            if service.done():
                service.result()
            info = ready[0]
            assert info.deliveries is not None
            await info.store.store_alert(make_alert("pat-1", priority="high"))
            await until(lambda: receiver.at("/ward-3"), "the push topic to get the alarm")
            await until(lambda: info.deliveries is not None and info.deliveries.counters.delivered, "the delivery")
            async with httpx.AsyncClient(base_url=str(info.http_url)) as c:
                metrics = (await c.get("/metrics")).text
            assert 'ecgstream_cloud_deliveries_delivered_total{channel="phone"} 1.0' in metrics
        finally:
            stop.set()
            await service
    assert "Patient: pat-1" in receiver.at("/ward-3")[0].body.decode()


async def test_cloud_run_refuses_to_start_when_a_channel_secret_is_missing(tmp_path: Path,
                                                                           receiver: HttpReceiver) -> None:
    text = (f'[database]\nurl = "sqlite:///{tmp_path / "cloud.db"}"\n[run]\ningest = false\nmodels = false\n'
            '[http]\nport = 0\n' + webhook(receiver))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TEST_WEBHOOK_SECRET", raising=False)
        with pytest.raises(ConfigError, match="TEST_WEBHOOK_SECRET \\(secret_env\\) is not set"):
            await run_service(parse_settings(text, env={}), handle_signals=False)


# -- signatures -----------------------------------------------------------------------------------

@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512), ts=st.integers(0, 2**40),
       flip=st.integers(0, 10**6))
def test_a_signature_verifies_only_for_its_secret_body_and_time(secret: bytes, body: bytes, ts: int, flip: int) -> None:
    signature = sign(secret, ts, body)
    assert verify(secret, body, str(ts), signature, now_s=ts)
    assert not verify(secret + b"x", body, str(ts), signature, now_s=ts)
    assert not verify(secret, body, str(ts + 1), signature, now_s=ts)      # the timestamp is signed too
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
        assert not verify(secret, tampered, str(ts), signature, now_s=ts)
    assert not verify(secret, body, str(ts), signature, now_s=ts + 301)     # too old: a replay


# -- configuration --------------------------------------------------------------------------------

def test_channels_are_off_by_default_and_bad_channels_are_clear_errors() -> None:
    assert parse_settings("", env={}).escalation.channels == ()
    base = ('[[escalation.channels]]\nname = "hook"\nkind = "webhook"\nurl = "https://hooks.test/ecg"\n'
            'secret_env = "HOOK_SECRET"\n')
    with pytest.raises(ConfigError, match=r"cloud.toml: \[\[escalation.channels\]\] #1 .*needs secret_env"):
        parse_settings(base.replace('secret_env = "HOOK_SECRET"\n', ""), source="cloud.toml", env={})
    with pytest.raises(ConfigError, match=r"roles \['boss'\] are not in \[escalation\] level_roles"):
        parse_settings(base + 'roles = ["boss"]\n', env={})
    with pytest.raises(ConfigError, match="must not carry credentials"):
        parse_settings(base.replace("https://", "https://user:pw@"), env={})
    with pytest.raises(ConfigError, match="'hook' is used twice"):
        parse_settings(base + base, env={})
    with pytest.raises(ConfigError, match="to do not apply to kind 'webhook'"):
        parse_settings(base + 'to = ["a@b.test"]\n', env={})
    with pytest.raises(ConfigError, match="priorities.* must be one of high, medium, low"):
        parse_settings(base + 'priorities = ["urgent"]\n', env={})
    channels = parse_settings(base, env={}).escalation.channels
    with pytest.raises(ConfigError, match="environment variable HOOK_SECRET \\(secret_env\\) is not set"):
        build_channels(channels, environ={})
    secret = "s3cr3t-value"
    [channel] = build_channels(channels, environ={"HOOK_SECRET": secret})
    assert secret not in repr(channel.config) and channel.config.target == "https://hooks.test/ecg"


@pytest.mark.parametrize("query", ["?auth=abc", ""])
def test_a_push_target_never_shows_a_token_in_its_query(query: str) -> None:
    text = f'[[escalation.channels]]\nname = "p"\nkind = "push"\nurl = "https://ntfy.test/ward{query}"\n'
    assert parse_settings(text, env={}).escalation.channels[0].target == "https://ntfy.test/ward"

