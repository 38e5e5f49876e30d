"""The parts of ``trivue demo``, started in order and stopped in reverse.

broker -> database (streets, demo account) -> scenario (households, rounds) -> server -> history
-> banner -> live trucks. Each step is one method; ``stop`` undoes whatever was started.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from base.errors import CliError
from server.app import create_app
from server.command_line import DatabaseUnavailable, migrated_engine
from server.config import ConfigError, ServerSettings, load_settings
from server.ingest.models import Lift
from server.streets.importer import import_street_file
from server.streets.models import Street
from server.web.accounts import User
from server.web.auth import add_user
from trivue.broker import EmbeddedBroker
from trivue.demo.fleet_live import DARK_LIVE, publish_history, start_edge_trucks, start_event_trucks
from trivue.demo.folder_lock import FolderLock
from trivue.demo.options import DemoOptions
from trivue.demo.place import DEMO_PASSWORD, DEMO_USER, RENNES_CENTRE, SAMPLE_STREETS, demo_port, free_port
from trivue.sim.homes import store_synthetic
from trivue.sim.publisher import FleetLink
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import Scenario, ScenarioOptions, build_scenario
from trivue.sim.trucks import EdgeTruck
from vision.model import DetectorError, default_model_path
from vision.schema import Stream

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATUS_EVERY_S = 30.0


def live_model(requested: Path | None) -> Path:
    """``--model``, else what a truck runs by default (the shipped INT8 model, checked against its FP32
    sibling at start-up: ``edge.model_choice``), so that the demo shows the trucks' own model."""
    return Path(requested) if requested is not None else default_model_path(quantised=True)


class Showcase:
    """The demo's parts; ``trivue.demo.fleet_live`` drives its trucks through the attributes named in
    its ``LiveShow`` protocol."""

    settings: ServerSettings
    scenario: Scenario
    scenario_options: ScenarioOptions

    def __init__(self, options: DemoOptions, data_dir: Path, streets: Path, origin: str) -> None:
        self.options, self.data_dir, self.streets, self.origin = options, data_dir, streets, origin
        self.stream: Stream = options.world.stream
        self.events_only = options.events_only  # becomes True when the edge agent cannot start
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.trucks: list[EdgeTruck] = []
        self.broker: EmbeddedBroker | None = None
        self.server: uvicorn.Server | None = None
        self.server_thread: threading.Thread | None = None
        self.link: FleetLink | None = None
        self.notes: list[str] = []
        self.folder_lock = FolderLock(data_dir)
        self.live_lifts = 0  # counted by the truck threads (an int += under the GIL is enough here)

    def lift_done(self, *_: object) -> None:
        self.live_lifts += 1

    def start(self) -> None:
        if not self.options.verbose:  # the broker's state machine and Alembic narrate every step at INFO
            for chatty in ("alembic", "amqtt", "transitions", "uvicorn.access"):
                logging.getLogger(chatty).setLevel(logging.WARNING)
        self._broker()
        self._settings()
        self._database()
        self._scenario()
        self._server()
        self._history()
        self._live()
        self._banner()

    def _broker(self) -> None:
        self.broker = EmbeddedBroker(HOST, free_port(HOST)).start()

    def _settings(self) -> None:
        port = demo_port(os.environ.get("TRIVUE_PORT", ""))
        try:
            self.settings = load_settings(None, data_dir=self.data_dir, dev=True, broker_url=self.broker.url,
                                          mqtt_protocol="3.1.1", cookie_secure=False, host=HOST, port=port,
                                          database_url=os.environ.get("TRIVUE_DATABASE_URL"),
                                          # The demo shows the whole reminders flow (household letters,
                                          # contacts): it switches the household level on, and says so.
                                          household_level=True)
        except ConfigError as error:
            raise CliError(str(error)) from None

    def _database(self) -> None:
        try:  # a data folder that cannot be made, a bad TRIVUE_DATABASE_URL, a full disk: one line
            self.settings.make_folders()
            self.folder_lock.acquire()  # before the database or a truck's outbox is opened
            self.engine = migrated_engine(self.settings.db_url)
        except (ConfigError, DatabaseUnavailable) as error:
            raise CliError(str(error)) from None
        with Session(self.engine) as session:
            if not session.scalar(select(func.count()).select_from(Street).where(Street.commune == "Rennes")):
                report = import_street_file(session, self.streets, "Rennes")
                self.notes.append(f"streets: {report.segments} segments, {report.length_km:.0f} km imported "
                                  f"from {self.origin}")
            else:
                self.notes.append(f"streets: Rennes already imported in {self.settings.db_url}")
            if session.scalar(select(User.id).where(User.name == DEMO_USER)) is None:
                add_user(session, DEMO_USER, DEMO_PASSWORD, "manager")
            self.had_lifts = bool(session.scalar(select(func.count()).select_from(Lift)))
            session.commit()

    def _scenario(self) -> None:
        world = self.options.world.scenario
        area = world.area or (None if self.streets == SAMPLE_STREETS else RENNES_CENTRE)
        self.scenario_options = replace(world, area=area, truck_prefix="demo")
        with Session(self.engine) as session:
            network = StreetNetwork.from_session(session)
            try:
                self.scenario = build_scenario(network, self.scenario_options, session)
            except ValueError as error:  # a --street-rate naming no street of the demo's area
                raise CliError(str(error)) from None
            added = store_synthetic(session, self.scenario.households)
            session.commit()
        synthetic = sum(h.synthetic for h in self.scenario.households)
        self.notes.append(f"households: {len(self.scenario.households)} on the rounds: "
                          f"{len(self.scenario.households) - synthetic} imported addresses, {synthetic} synthetic "
                          f"(marked « simulé »{f', {added} new' if added else ''})")

    def _server(self) -> None:
        app = create_app(self.settings, self.engine)
        config = uvicorn.Config(app, host=HOST, port=self.settings.port, log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.server_thread = threading.Thread(target=self.server.run, name="server", daemon=True)
        self.server_thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server_thread.is_alive() and self.server.started and self._healthy():
                return
            if not self.server_thread.is_alive():
                break
            time.sleep(0.2)
        raise CliError(f"the server did not start on {self.url}")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.settings.port}"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _history(self) -> None:
        if self.had_lifts:
            self.notes.append("history: lifts already stored in the database, kept as they are")
            return
        days = self.options.history_days
        if days > 0:
            count, dark = publish_history(self, days)
            self.notes.append(f"history: {count} lifts over {days} days, {dark} of them not judged "
                              f"({self.scenario.trucks[-1]}'s camera dark; simulated events, model "
                              "« trivue-simulator »)")

    def _live(self) -> None:
        model = live_model(self.options.model)
        if not self.events_only and not Path(model).is_file():
            log.warning("no detection model (%s): live trucks send simulated judged events instead of "
                        "running the edge agent", model)
            self.events_only = True
        if not self.events_only:
            try:
                start_edge_trucks(self, Path(model))
            except (ValueError, OSError, DetectorError) as error:  # a model the rules do not cover...
                if self.options.model is not None:  # asked for by name: the user must hear it
                    raise CliError(str(error)) from None
                log.error("the edge agent cannot start (%s): live trucks send judged events instead", error)
                self.notes.append(f"[bold]edge agent NOT started: {escape(str(error))}[/]")
                self.events_only = True
            else:
                self.notes.append(f"live trucks: the edge agent with {self._running(Path(model))}"
                                  + (" (COCO fallback: never trained on waste)" if "coco" in Path(model).name else ""))
        if self.events_only:
            start_event_trucks(self)
            self.notes.append("live trucks: simulated judged events (no edge agent)")
        first, lifts = DARK_LIVE
        self.notes.append(f"{self.scenario.trucks[-1]}: hopper lights out for lifts {first} to {first + lifts - 1} of "
                          "each round: lifts not judged, flagged on Flotte and counted on Qualité des données")

    def _running(self, model: Path) -> str:
        """The model the agents run, as their INT8 self-check chose it (the FP32 sibling when it failed)."""
        check = self.trucks[0].agent.model_check if self.trucks else None
        if check is None:
            return str(model)
        return f"{model.with_name(check.running)} (INT8 self-check {check.status}, as on a truck)"

    def _banner(self) -> None:
        lines = [f"[bold]Dashboard:[/] {self.url}/   (login {DEMO_USER} / {DEMO_PASSWORD}, role manager)",
                 f"API: {self.url}/docs   MQTT broker: {self.broker.url}   data: {self.data_dir.resolve()}",
                 f"trucks: {', '.join(self.scenario.trucks)} at x{self.options.speed:g} speed, stream "
                 f"{self.stream.value}", *self.notes,
                 "[bold]Household level ON for the demo[/] (addresses, bins, household reminders; a real "
                 "server starts at street level until an admin sets household_level: true)",
                 "[bold red]DEV MODE: the API and dashboard are open WITHOUT LOGIN. Never expose this server.[/]",
                 "Ctrl-C stops everything."]
        Console(stderr=True).print(Panel("\n".join(lines), title="Trivue demo", border_style="red"))

    def wait(self, duration: float) -> None:
        started = time.monotonic()
        deadline = started + duration if duration > 0 else None
        report = started + STATUS_EVERY_S
        while deadline is None or time.monotonic() < deadline:
            if self.server_thread is not None and not self.server_thread.is_alive():
                raise CliError("the server stopped")
            if time.monotonic() >= report:
                report += STATUS_EVERY_S
                log.info("live: %d lifts by %d trucks in %.0f s; dashboard %s/", self.live_lifts,
                         len(self.scenario.trucks), time.monotonic() - started, self.url)
            time.sleep(0.5)

    def stop(self) -> None:
        log.info("stopping the demo")
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        for truck in self.trucks:
            truck.finish(5)
            truck.close()
        if self.link is not None:
            self.link.stop()
        if self.server is not None:
            self.server.should_exit = True
            self.server_thread.join(timeout=15)
        if self.broker is not None:
            self.broker.stop()
        self.folder_lock.release()
        log.info("demo stopped")

