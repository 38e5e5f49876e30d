"""The field loop runs on the fleet tests' real parts: ``trivue server`` on a free port with its MQTT
ingest and rollout task, ``trivue`` commands on its settings file, ``trivue edge`` trucks."""

from tests.fleet.conftest import fleet, trucks  # noqa: F401  (fixtures)
from tests.server.conftest import database_url, postgres_server_url  # noqa: F401  (fixtures)
