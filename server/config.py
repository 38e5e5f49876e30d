"""Server settings: one strict model read from a YAML file, then overridden by ``TRIVUE_*`` variables.

The same settings serve ``trivue server`` and the maintenance commands (``users``, ``tokens``,
``streets``, ``addresses``) so that they all act on the same database. A bad value stops start-up
with a message naming the field and the value (``ConfigError``).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from base.credentials import mask_url
from base.ids import is_truck_id
from base.strict_yaml import blamed, describe, read_mapping
from vision.rules import DEFAULT_RULES, RulesError, SortingRules

ENV_PREFIX = "TRIVUE_"
# Values copied from tutorials and compose files; a deployment that still carries one is not ready.
PLACEHOLDER_SECRETS = frozenset({"changeme", "changethis", "change-me", "password", "secret", "admin",
                                 "example", "xxx", "todo", "test"})


# Installers and operators read these lines, as the truck's (edge.config.EDGE_WORDING): plain words,
# and describe() drops pydantic's "Value error, " prefix once given a wording.
SERVER_WORDING = {"extra_forbidden": "unknown setting", "missing": "required"}
# How SQLAlchemy's make_url splits ``scheme://user:password@host``: the password ends at its first "@".
_SQLALCHEMY_USERINFO = re.compile(r"^[\w+]+://[^:/]*:[^@]*@(?P<host>[^/?]*)")


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the field and the value at fault."""


def masked_url(url: str) -> str:
    """``url`` with its password masked, for a log or an error line (they go to journals and support
    tickets); works on a URL that does not even parse."""
    return mask_url(url)


class ServerSettings(BaseModel):
    """Everything ``trivue server`` needs; every field is also ``TRIVUE_<FIELD>`` in the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # First: the URLs' placeholder check reads it, and a field sees only the fields before it.
    dev: bool = Field(default=False, description="Open every route without login: demos only")
    data_dir: Path = Field(default=Path("trivue-data"), description="Folder for the SQLite file and photos")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/trivue.db (postgresql://...)")
    evidence_dir: Path | None = Field(default=None, description="Evidence photos; default <data_dir>/evidence")
    broker_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://[user:pass@]host:port")
    topic_prefix: str = Field(default="trivue/v1", pattern=r"^[^#+$][^#+]*[^/#+]$",
                              description="Topic root; trucks publish under <prefix>/<truck_id>/...")
    mqtt_client_id: str = Field(default="trivue-server", min_length=1, max_length=64,
                                description="Fixed client id: the broker keeps our session while we are away")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    mqtt_shared_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]+$",
        description="Subscribe as $share/<group>/... so several server processes split the load")
    mqtt_session_expiry_s: int = Field(default=7 * 86400, ge=0, description="Broker keeps our queue this long")
    host: str = Field(default="127.0.0.1", description="HTTP listen address")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP listen port")
    timezone: str = Field(default="Europe/Paris", description="Local time zone that defines a collection day")
    retention_days: int = Field(default=365, ge=1, description="Raw lifts older than this are deleted")
    evidence_retention_days: int = Field(default=30, ge=1, description="Evidence photos kept this long")
    dead_letter_retention_days: int = Field(default=90, ge=1, description="Dead letters kept this long")
    street_level_letter_days: int = Field(
        default=30, ge=1,
        description="While household_level is off, a lift's dead letter (its raw message: bin tag, GPS fix) is "
                    "kept this long at most, time enough to declare a truck and replay (docs/privacy.md §1 bis)")
    dead_letter_held_bytes: int = Field(
        default=512 * 1024 * 1024, ge=0,
        description="Payload bytes of dead letters kept whole for a replay (an unregistered truck's photos), "
                    "at most; beyond it a letter keeps its first 4 KiB")
    # CNIL guidance for access logs: 6 months to 1 year. The audit log holds the IP addresses of failed
    # logins and who read which household's data, so it is personal data with a limit of its own.
    audit_retention_days: int = Field(default=365, ge=1, description="Audit log entries kept this long")
    # Reminder items name households (key, address, bin) next to their contamination counts; they must
    # not outlive the lifts they came from. Keep it at least the rules' household.escalation_memory_days
    # (180), or an expired household's next message starts again at level 1.
    reminder_retention_days: int = Field(
        default=365, ge=1,
        description="Reminders: a campaign's household items are pseudonymised this long after its last send, "
                    "review or creation, once its effect window is over; false detections deleted this long after "
                    "their report")
    max_payload_bytes: int = Field(default=64 * 1024, ge=1024, description="Larger lift/stats messages refused")
    max_evidence_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="Larger photos refused")
    known_trucks: list[str] | None = Field(
        default=None, description="Truck registry; when set, messages from other trucks are dead letters")
    rollout_canary_lifts: int = Field(
        default=20, ge=1, le=100_000,
        description="Lifts each canary truck sends with a new model, without errors, before the rest follow")
    rollout_check_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="How often the server advances rollouts and publishes pending truck configs")
    rollout_stall_after_s: float = Field(
        default=24 * 3600, ge=60, le=30 * 86400,
        description="A rollout at its canary stage is flagged stalled once a canary short of its lifts has not "
                    "been heard from for this long (rollouts never advance without their canaries)")
    ingest_enabled: bool = Field(default=True, description="Run the MQTT ingest inside `trivue server`")
    ingest_batch_size: int = Field(default=1000, ge=1, le=10_000, description="Messages written per transaction")
    ingest_batch_wait_ms: int = Field(default=50, ge=0, le=10_000, description="Wait to fill a batch")
    ingest_queue_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024 * 1024,
        description="Payload bytes received and not yet written, at most (photos after an outage); "
                    "beyond it the broker keeps them")
    session_hours: int = Field(default=12, ge=1, le=24 * 30, description="Login session lifetime")
    # Browsers keep a Secure cookie only from https:// or this machine (localhost): a pilot reached at
    # http://192.168.1.20:8000/ needs https, or this off, knowingly (the login page says so).
    cookie_secure: bool = Field(
        default=True, description="Session cookie only over HTTPS (off in dev); false only for a pilot on a local "
                                  "network over plain HTTP, where passwords and cookies then travel in clear")
    viewer_min_lifts: int = Field(
        default=1, ge=1, description="Streets with fewer lifts are hidden from viewers (privacy threshold)")
    opendata_min_lifts: int = Field(
        default=10, ge=5,
        description="Open data (trivue opendata export, /api/opendata/...): a street, period and stream with fewer "
                    "lifts is not published (k-anonymity threshold, never below 5)")
    opendata_min_households: int = Field(
        default=5, ge=3,
        description="Open data: a street with fewer known addresses (real ones, linked to it by the address import) "
                    "is not published, however many lifts (k-anonymity counts households; never below 3)")
    opendata_publish_without_addresses: bool = Field(
        default=False,
        description="Open data: also publish the streets with no known address (no address file imported for "
                    "them), on opendata_min_lifts alone: their households cannot be counted, a risk the "
                    "collectivité takes knowingly (docs/opendata.md)")
    basemap_url: str | None = Field(
        default=None, description="Basemap from a tile server: XYZ or WMTS (KVP, PM tile matrix set) URL template "
                                  "with {z}, {x} and {y}; images from its origin only (content security policy)")
    basemap_file: Path | None = Field(
        default=None, description="Basemap from a raster PMTiles file served by this server (offline deployments)")
    basemap_attribution: str | None = Field(
        default=None, max_length=300, description="The basemap's attribution, shown on the map (required with one)")
    basemap_max_zoom: int = Field(default=19, ge=0, le=24, description="Deepest zoom the tile URL serves")
    accessibility_entity: str = Field(
        default="La collectivité", min_length=1, max_length=200,
        description="Who publishes the déclaration d'accessibilité at /accessibilite (e.g. Orléans Métropole)")
    accessibility_status: Literal["non conforme", "partiellement conforme", "totalement conforme"] = Field(
        default="non conforme",
        description="RGAA conformity state; 'non conforme' until an audit says otherwise (the RGAA rule)")
    accessibility_audit: str | None = Field(
        default=None, max_length=2000,
        description="The audit behind the state: date, auditor, share of RGAA criteria met (shown on /accessibilite)")
    accessibility_contact: str | None = Field(
        default=None, max_length=500,
        description="Where users report an accessibility problem: e-mail, form URL or postal address")
    household_level: bool = Field(
        default=False,
        description="Household-level data (addresses, bin tags, household reminders and contacts): off until an "
                    "admin enables it, after the collectivité's deliberation and DPIA; street level only while off, "
                    "when ingest stores no bin tag or address (docs/privacy.md §1 bis)")
    # The trucks judge lifts by their own copy (their `rules:` setting); the server needs the same
    # file for what it says of the rules: households' letters, the labelling taxonomy, the dashboard's
    # categories, the warning when a model has classes the rules lack.
    sorting_rules: Path = Field(
        default=DEFAULT_RULES,
        description="Sorting rules file (classes, categories, what each stream accepts): the same file as "
                    "the trucks' `rules:`; default the packaged French rules")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder of the zone database
            raise ValueError("unknown time zone") from None  # describe() names the value
        return value

    @field_validator("basemap_url")
    @classmethod
    def _tile_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("expected an https:// tile URL")  # describe() names the value
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in value]
        if missing:
            raise ValueError(f"the tile URL needs {', '.join(missing)} (XYZ, or WMTS with TILEMATRIX={{z}}"
                             f"&TILECOL={{x}}&TILEROW={{y}})")
        return value

    @model_validator(mode="after")
    def _one_basemap(self) -> ServerSettings:
        if self.basemap_url and self.basemap_file:
            raise ValueError("basemap_url and basemap_file are both set: choose one basemap")
        if (self.basemap_url or self.basemap_file) and not self.basemap_attribution:
            raise ValueError("basemap_attribution is required with a basemap (e.g. '© IGN' or "
                             "'© les contributeurs d'OpenStreetMap')")
        return self

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://host:port or mqtts://host:port")  # describe() names the value
        return value

    @field_validator("known_trucks", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: "truck-1,truck-2"
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("known_trucks")
    @classmethod
    def _some_trucks(cls, trucks: list[str] | None) -> list[str] | None:
        # An empty registry (TRIVUE_KNOWN_TRUCKS= in a unit file) refused every truck: each lift a
        # dead letter, ingest stopped without a word. A JSON list in the variable was one odd name.
        if trucks is not None and not trucks:
            raise ValueError("no truck listed: every truck's messages would be refused; to accept every truck, "
                             "leave the setting out (unset TRIVUE_KNOWN_TRUCKS); to take in no message at all, "
                             "ingest_enabled: false")
        for truck in trucks or ():
            if not is_truck_id(truck):
                raise ValueError(f"{truck!r} is not a truck id (write benne-01,benne-02)")
        return trucks

    # A field check, not a model one: its error names the field, so the message names the file or
    # the variable (server.env's TRIVUE_DATABASE_URL) the URL came from, as for any bad value.
    @field_validator("database_url", "broker_url")
    @classmethod
    def _no_placeholder_secret(cls, url: str | None, info: ValidationInfo) -> str | None:
        password = urlsplit(url).password if url else None
        if password and password.lower() in PLACEHOLDER_SECRETS and not info.data.get("dev"):
            raise ValueError(f"carries the placeholder password {password!r}: set a real secret")
        return url

    @field_validator("database_url")
    @classmethod
    def _database_url_readable(cls, url: str | None) -> str | None:
        # Checked here rather than only when the engine is made: the line then names server.env's
        # variable or the file the URL came from. SQLAlchemy ends the password at its first "@", so
        # an unencoded one made the password's tail the host, printed by every error line after.
        if url is None:
            return url
        if url.startswith("postgres://"):  # what libpq and psql take, and SQLAlchemy refuses
            raise ValueError("write postgresql:// (the spelling SQLAlchemy reads), not postgres://")
        userinfo = _SQLALCHEMY_USERINFO.match(url)  # user (an "@" allowed), password up to the first "@"
        if userinfo and "@" in userinfo.group("host"):
            raise ValueError("the password holds an '@': write it %40 in the URL (percent-encoded)")
        return url

    def make_folders(self) -> None:
        """Create ``data_dir`` and the evidence folder; a path that cannot be a folder (a file is
        there, no permission) stops start-up naming the setting."""
        for field, path in (("data_dir", self.data_dir), ("evidence_dir", self.evidence_path)):
            _make_folder(field, path)

    def make_command_folders(self) -> None:
        """What a command needs: the folder settings checked (a file there stops it naming the
        setting, as at the server's start) and the default SQLite database's folder made. The
        server's ``make_folders`` made the evidence folder too: a command run with
        ``TRIVUE_DATABASE_URL`` elsewhere left an empty ``trivue-data/evidence`` in whatever folder
        the operator stood in. A photo's folder is made when a photo is written."""
        for field, path in (("data_dir", self.data_dir), ("evidence_dir", self.evidence_path)):
            if path.exists() and not path.is_dir():
                raise ConfigError(f"{field}: {str(path)!r} cannot be used as a folder: not a folder")
        if self.database_url is None:  # sqlite:///<data_dir>/trivue.db; a URL given names its own folder
            _make_folder("data_dir", self.data_dir)

    def load_sorting_rules(self) -> SortingRules:
        """The rules ``sorting_rules`` names, read and validated: once, by ``create_app`` and by each
        command that needs them, which hand them down. A missing or invalid file stops start-up
        naming the setting (the file's own message names the stream or class at fault)."""
        try:
            return SortingRules.load(self.sorting_rules)
        except RulesError as error:
            raise ConfigError(f"sorting_rules: {error}") from None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'trivue.db'}"

    @property
    def evidence_path(self) -> Path:
        return self.evidence_dir or self.data_dir / "evidence"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def session_cookie_secure(self) -> bool:
        """Whether the login's cookie is Secure: ``cookie_secure``, unless dev mode (demos on plain HTTP)."""
        return self.cookie_secure and not self.dev


def _from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The ``TRIVUE_<FIELD>`` variables; one that misspells a setting stops start-up.

    Other ``TRIVUE_*`` names are left alone: the truck's (``TRIVUE_EDGE_*``), the secrets the
    reminders read, the tests' own. A name within a typo of a setting (``TRIVUE_RETENTON_DAYS``)
    was ignored without a word, so the server ran on the default the operator meant to change.
    """
    fields = ServerSettings.model_fields
    values = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key.startswith(f"{ENV_PREFIX}EDGE_"):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in fields:
            values[name] = value
        elif close := difflib.get_close_matches(name, fields, n=1, cutoff=0.85):
            raise ConfigError(f"{key}: not a setting (did you mean {ENV_PREFIX}{close[0].upper()}?)")
    return values


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None, *,
                  overrides_source: str = "settings", **overrides: Any) -> ServerSettings:
    """Settings from ``path`` (YAML, optional), then ``TRIVUE_*`` variables, then ``overrides``
    (``overrides_source`` names them in an error: ``command line`` for the commands' options)."""
    data = read_mapping(path, ConfigError) if path is not None else {}
    from_env = _from_env(os.environ if env is None else env)
    data.update(from_env)
    given = {k: v for k, v in overrides.items() if v is not None}
    data.update(given)
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as error:
        source = _source(error, path, from_env, given, overrides_source)
        raise ConfigError(describe(error, source, wording=SERVER_WORDING)) from None


def _source(error: ValidationError, path: Path | None, from_env: Mapping[str, str], given: Mapping[str, Any],
            overrides_source: str) -> str:
    """Where the bad values came from, as the truck's settings say it (a ``--database-url`` was blamed
    on the --config file)."""
    def origin(loc: tuple[int | str, ...]) -> str | list[str]:
        name = str(loc[0]) if loc else ""
        if name in given:
            return overrides_source
        if name in from_env:
            return [f"{ENV_PREFIX}{name.upper()}"]
        return str(path) if path else "settings"

    return blamed(error, origin)


def _make_folder(field: str, path: Path) -> None:
    """``path`` made a folder; one that cannot be (a file is there, no permission) stops start-up
    naming the setting."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"{field}: {str(path)!r} cannot be used as a folder: {reason}") from None
