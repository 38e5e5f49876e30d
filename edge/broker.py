"""The truck's MQTT clients (the uplink's, the crew alert's, the lift-signal bridge's): one factory."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from edge.config import BrokerUrl, EdgeSettings


def make_client(settings: EdgeSettings, client_id: str, clean: bool) -> tuple[mqtt.Client, BrokerUrl]:
    """A paho client for the configured broker: MQTT 3.1.1, credentials, TLS, back-off."""
    url = BrokerUrl.parse(settings.uplink.broker)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311
    )
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        ca = str(settings.uplink.ca_file) if settings.uplink.ca_file else None
        client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=settings.uplink.reconnect_max_s)
    return client, url
