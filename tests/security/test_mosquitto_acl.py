"""The shipped Mosquitto config confines each truck to its own topics; TLS needs the private CA.

A real Mosquitto runs on deploy/mosquitto/mosquitto.conf and deploy/mosquitto/acl (paths and ports
rewritten), with accounts made by deploy/mosquitto/add-truck.sh and certificates made by
deploy/tls/make-certs.sh; real paho clients try what a stolen or buggy truck would try.
"""

from __future__ import annotations

import queue
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.security.secured_mosquitto import (
    DEPLOY,
    SERVER_USER,
    Probe,
    SecuredMosquitto,
    add_truck,
    tools_missing,
)

pytestmark = pytest.mark.skipif(tools_missing() is not None, reason=str(tools_missing()))

P = "trivue/v1"
SETTLE_S = 0.7  # how long a message that should not arrive is waited for


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredMosquitto]:
    secured = SecuredMosquitto(tmp_path_factory.mktemp("mosquitto"))
    secured.start()
    yield secured
    secured.stop()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for probe in made:
        probe.close()


def connected(broker: SecuredMosquitto, probes: list[Probe], user: str, client_id: str = "",
              protocol: int = mqtt.MQTTv311) -> Probe:
    probe = Probe(client_id, protocol)
    probes.append(probe)
    reason = probe.connect(broker.port, user, broker.passwords[user])
    assert not reason.is_failure, f"{user} refused: {reason}"
    return probe


def server_probe(broker: SecuredMosquitto, probes: list[Probe]) -> Probe:
    server = connected(broker, probes, SERVER_USER)
    assert [c.value for c in server.subscribe(f"{P}/#")] == [1]
    return server


@pytest.mark.parametrize("user,password", [(None, None), ("truck-a", "wrong-password"), ("nobody", "x" * 20)])
def test_anonymous_and_wrong_passwords_are_refused(broker: SecuredMosquitto, probes: list[Probe],
                                                   user: str | None, password: str | None) -> None:
    probe = Probe()
    probes.append(probe)
    assert probe.connect(broker.port, user, password).is_failure


FORBIDDEN = [
    f"{P}/truck-b/lift", f"{P}/truck-b/evidence/0b7e1d1c-62c5-4a4b-9a52-6a57b7f6d2a8", f"{P}/truck-b/status",
    f"{P}/truck-b/stats", f"{P}/truck-b/config", f"{P}/truck-a/config", f"{P}/truck-a/other",
    f"{P}/truck-a", f"{P}/truck-a/lift/extra", f"{P}/truck-a/evidence/x/y", "trivue/v2/truck-a/lift", "elsewhere",
    "$SYS/broker/forged",
    # A forged receipt would make a truck delete lifts the server never committed: only the server writes them.
    f"{P}/truck-a/receipt", f"{P}/truck-b/receipt",
]


@pytest.mark.parametrize("topic", FORBIDDEN)
def test_a_truck_cannot_publish_outside_its_own_topics(broker: SecuredMosquitto, probes: list[Probe],
                                                       topic: str) -> None:
    """MQTT 3.1.1: the proof is what the server receives.

    Mosquitto 2.0 acknowledges the denied QoS 1 publish, then closes the truck's connection: so
    truck B sends the control message, once truck A's forged publish has been acknowledged (and
    so processed by the broker).
    """
    server = server_probe(broker, probes)
    truck_a = connected(broker, probes, "truck-a")
    truck_a.publish(topic, b'{"forged": true}')
    connected(broker, probes, "truck-b").publish(f"{P}/truck-b/lift", b"marker")
    received = server.messages(SETTLE_S)
    assert (f"{P}/truck-b/lift", b"marker") in received, "the control message did not arrive"
    assert [t for t, p in received if p != b"marker"] == []
    # A truck configured with the wrong id is disconnected at each try: loud, and nothing is lost
    # as long as the edge keeps rows whose PUBACK is not a success.
    assert truck_a.disconnects.get(timeout=2) is not None


def test_mqtt5_publishes_outside_its_topics_are_answered_not_authorised(broker: SecuredMosquitto,
                                                                         probes: list[Probe]) -> None:
    truck_a = connected(broker, probes, "truck-a", protocol=mqtt.MQTTv5)
    mids = {topic: truck_a.publish(topic, b"{}") for topic in [*FORBIDDEN, f"{P}/truck-a/lift"]}
    acks = truck_a.acks
    refused = {topic for topic, mid in mids.items() if acks[mid] == 0x87}  # 0x87: Not authorized
    assert refused == set(FORBIDDEN)
    assert acks[mids[f"{P}/truck-a/lift"]] < 0x80  # success (0x10: no matching subscribers)


def test_a_truck_publishes_its_own_topics(broker: SecuredMosquitto, probes: list[Probe]) -> None:
    server = server_probe(broker, probes)
    truck_a = connected(broker, probes, "truck-a")
    own = [f"{P}/truck-a/lift", f"{P}/truck-a/evidence/0b7e1d1c-62c5-4a4b-9a52-6a57b7f6d2a8",
           f"{P}/truck-a/status", f"{P}/truck-a/stats"]
    for topic in own:
        truck_a.publish(topic, topic.encode())
    assert sorted(server.messages(SETTLE_S)) == sorted((t, t.encode()) for t in own)


@pytest.mark.parametrize("topic", [f"{P}/#", f"{P}/+/lift", f"{P}/truck-b/#", f"{P}/+/config", "#",
                                   f"{P}/+/receipt", f"{P}/truck-b/receipt"])
def test_a_truck_reads_nothing_of_other_trucks(broker: SecuredMosquitto, probes: list[Probe], topic: str) -> None:
    truck_a = connected(broker, probes, "truck-a")
    truck_a.subscribe(topic)  # granted or refused, what matters is what it receives
    server = connected(broker, probes, SERVER_USER)
    truck_b = connected(broker, probes, "truck-b")
    server.publish(f"{P}/truck-b/config", b'{"config_version":"b1"}', retain=True)
    server.publish(f"{P}/truck-b/receipt", b'{"v":1,"digests":["00112233445566ff"]}')
    truck_b.publish(f"{P}/truck-b/lift", b"b's lift")
    truck_b.publish(f"{P}/truck-b/stats", b"b's stats")
    assert truck_a.messages(SETTLE_S) == []


def test_a_truck_reads_its_own_retained_config(broker: SecuredMosquitto, probes: list[Probe]) -> None:
    server = connected(broker, probes, SERVER_USER)
    server.publish(f"{P}/truck-a/config", b'{"config_version":"a1"}', retain=True)
    truck_a = connected(broker, probes, "truck-a")
    assert [c.value for c in truck_a.subscribe(f"{P}/truck-a/config")] == [1]
    assert truck_a.messages(SETTLE_S) == [(f"{P}/truck-a/config", b'{"config_version":"a1"}')]


def test_a_truck_reads_the_receipts_the_server_sends_it(broker: SecuredMosquitto, probes: list[Probe]) -> None:
    truck_a = connected(broker, probes, "truck-a")
    assert [c.value for c in truck_a.subscribe(f"{P}/truck-a/receipt")] == [1]
    server = connected(broker, probes, SERVER_USER)
    server.publish(f"{P}/truck-a/receipt", b'{"v":1,"digests":["00112233445566ff"]}')
    server.publish(f"{P}/truck-b/receipt", b"not for truck-a")
    assert truck_a.messages(SETTLE_S) == [(f"{P}/truck-a/receipt", b'{"v":1,"digests":["00112233445566ff"]}')]


def test_the_server_reads_every_truck_also_through_a_shared_subscription(broker: SecuredMosquitto,
                                                                        probes: list[Probe]) -> None:
    server = connected(broker, probes, SERVER_USER, protocol=mqtt.MQTTv5)
    assert [c.value for c in server.subscribe(f"$share/trivue/{P}/+/lift")] == [1]
    for truck in ("truck-a", "truck-b"):
        connected(broker, probes, truck).publish(f"{P}/{truck}/lift", truck.encode())
    assert sorted(server.messages(SETTLE_S)) == [(f"{P}/truck-a/lift", b"truck-a"), (f"{P}/truck-b/lift", b"truck-b")]


def test_a_truck_cannot_take_over_the_servers_session_by_client_id(broker: SecuredMosquitto,
                                                                   probes: list[Probe]) -> None:
    """use_username_as_clientid: reusing the server's client id neither kicks it off nor steals its queue."""
    server = connected(broker, probes, SERVER_USER, client_id="trivue-server")
    server.subscribe(f"{P}/+/lift")
    intruder = connected(broker, probes, "truck-a", client_id="trivue-server")
    intruder.subscribe(f"{P}/#")
    connected(broker, probes, "truck-b").publish(f"{P}/truck-b/lift", b"for the server")
    assert server.messages(SETTLE_S) == [(f"{P}/truck-b/lift", b"for the server")]
    assert server.disconnects.empty(), "the server was kicked off by a truck using its client id"
    assert [t for t, _ in intruder.messages(0.1) if not t.startswith(f"{P}/truck-a/")] == []


@pytest.mark.parametrize("truck_id", ["..", "../truck-b", ".hidden", "a/b", "truck+", "truck#", "", "x" * 65,
                                      "trivue-server", "trivue-server-2", "t r"])
def test_add_truck_refuses_ids_that_would_widen_rights(tmp_path: Path, truck_id: str) -> None:
    done = add_truck(tmp_path, truck_id)
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert not (tmp_path / "passwd").exists()


def test_tls_listener_accepts_clients_that_trust_the_private_ca(broker: SecuredMosquitto,
                                                               probes: list[Probe]) -> None:
    probe = Probe()
    probes.append(probe)
    ca = broker.workdir / "tls" / "ca.crt"
    reason = probe.connect(broker.tls_port, "truck-a", broker.passwords["truck-a"], ca=ca)
    assert not reason.is_failure
    assert probe.client.socket().version() in ("TLSv1.2", "TLSv1.3")
    probe.publish(f"{P}/truck-a/status", b"online")


def test_tls_listener_is_refused_without_the_ca(broker: SecuredMosquitto) -> None:
    probe = Probe()
    with pytest.raises(ssl.SSLCertVerificationError):
        probe.connect(broker.tls_port, "truck-a", broker.passwords["truck-a"], ca=None, cert_reqs=ssl.CERT_REQUIRED)
    probe.client.loop_stop()


def test_tls_listener_refuses_plain_mqtt(broker: SecuredMosquitto) -> None:
    probe = Probe()
    probe.client.username_pw_set("truck-a", broker.passwords["truck-a"])
    probe.client.connect("127.0.0.1", broker.tls_port, keepalive=5)
    probe.client.loop_start()
    try:
        try:  # recorded by paho when the broker drops the socket (the TLS handshake fails): not by close()
            closed = probe.disconnects.get(timeout=5)
        except queue.Empty:
            closed = None
        connacks = []
        while not probe.connack.empty():
            connacks.append(probe.connack.get_nowait())
    finally:
        probe.close()
    assert closed is not None, "the TLS listener neither refused nor closed a plain MQTT connection within 5 s"
    assert all(reason.is_failure for reason in connacks), f"plain MQTT accepted on the TLS port: {connacks}"


def test_packets_over_the_broker_limit_never_reach_the_server(broker: SecuredMosquitto, probes: list[Probe]) -> None:
    """max_packet_size (3 MB): a bigger photo is dropped with its sender's connection; 1 MB passes."""
    server = server_probe(broker, probes)
    big = connected(broker, probes, "truck-a")
    topic = f"{P}/truck-a/evidence/0b7e1d1c-62c5-4a4b-9a52-6a57b7f6d2a8"
    big.client.publish(topic, b"\xff" * 3_500_000, qos=1)
    assert big.disconnects.get(timeout=10) is not None  # the broker closed the connection
    # paho would resend it after every reconnect, forever: a sender must never queue such a message.
    big.close()
    assert [t for t, _ in server.messages(SETTLE_S) if t == topic] == []  # (retained configs may come)
    connected(broker, probes, "truck-a").publish(topic, b"\xff" * 1_000_000)
    assert [len(p) for t, p in server.messages(2.0) if t == topic] == [1_000_000]


PATHS = ("password_file", "acl_file", "persistence_location", "cafile", "certfile", "keyfile")


def directives(name: str) -> list[str]:
    """Setting lines of a shipped config, paths left out; the 1883 listener's bind address too."""
    lines = (DEPLOY / "mosquitto" / name).read_text().splitlines()
    kept = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [("listener 1883" if line.startswith("listener 1883") else line) for line in kept
            if line.split()[0] not in PATHS]


def test_the_compose_config_has_the_same_settings_as_the_host_config() -> None:
    assert directives("compose.conf") == directives("mosquitto.conf")
    compose = (DEPLOY / "mosquitto" / "compose.conf").read_text()
    for directive in PATHS:
        assert re.search(rf"^{directive} /mosquitto/", compose, re.MULTILINE), directive
