"""The shared broker settings and TLS helper: one port rule, one way to build a client context."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from settings import BrokerConfig, client_tls_context, default_port

SYSTEM_CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


def test_the_port_follows_tls_unless_given() -> None:
    assert (default_port(False), default_port(True)) == (1883, 8883)
    assert BrokerConfig(host="mq", tls=True).port == 8883
    assert BrokerConfig(host="mq", tls=True, port=8884).port == 8884
    assert BrokerConfig(host="mq").port == 1883
    assert dataclasses.replace(BrokerConfig(host="mq"), tls=True).port == 1883  # a copy keeps its port


def test_an_embedded_broker_takes_no_credentials_or_tls() -> None:
    assert BrokerConfig().embedded and not BrokerConfig(host="mq").embedded
    with pytest.raises(ValidationError, match="need a real broker"):
        BrokerConfig(username="u")


def test_no_tls_means_no_context() -> None:
    assert client_tls_context(BrokerConfig(host="mq")) is None


def test_tls_verifies_the_broker_with_the_system_or_given_cas() -> None:
    context = client_tls_context(BrokerConfig(host="mq", tls=True))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    if not SYSTEM_CA.is_file():
        pytest.skip("no system CA bundle file")
    given = client_tls_context(BrokerConfig(host="mq", tls=True, cafile=SYSTEM_CA))
    assert given is not None and given.cert_store_stats()["x509_ca"] > 0


def test_a_missing_ca_bundle_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        client_tls_context(BrokerConfig(host="mq", tls=True, cafile=tmp_path / "nope.pem"))
