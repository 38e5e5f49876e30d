"""docs/deployment.md and deploy/ followed as an operator would: the single-machine commands run as
printed (files swapped for the committed samples), the broker installed as docs/security.md says
on Debian's own Mosquitto configuration, and the compose file keeps what the server writes on a
volume.

A new operator met all three: the streets were imported into ``./trivue-data`` while the server
opened ``/var/lib/trivue`` (no streets, and no account to log in with); the shipped mosquitto.conf
copied into ``conf.d/`` stopped Mosquitto at start (Debian's file sets ``persistence_location``
too); and the container kept its published models and letters in its own writable layer, lost at
the next ``docker compose up``.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.ports import free_port
from tests.security.secured_mosquitto import DEPLOY, MOSQUITTO, SecuredMosquitto, port_open, tools_missing

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = ROOT / "docs" / "deployment.md"
SECURITY = ROOT / "docs" / "security.md"
# Debian's /etc/mosquitto/mosquitto.conf as the mosquitto package installs it (paths rewritten).
DEBIAN_MOSQUITTO_CONF = """persistence true
persistence_location {data}/
log_dest stderr
include_dir {conf_d}
"""
BAN = ROOT / "tests" / "fixtures" / "geodata" / "ban-rennes-centre.csv"
STREETS = ROOT / "trivue" / "sample" / "rennes-centre.geojson"  # its features carry commune: Rennes
TAG, ADDRESS = "E28011600000AB01", "35238_1010_00001"  # an address of the BAN fixture (Rue Hoche)
INSTALL_STEPS = {"sudo", "make", "python3"}  # the suite runs the checkout's own installed trivue


def single_machine_block() -> list[str]:
    text = DEPLOYMENT.read_text(encoding="utf-8")
    section = re.search(r"^## 1\. Single machine.*?^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/deployment.md: no sh block in section 1"
    return [line for line in section.group(1).splitlines() if line.strip()]


def samples(tmp_path: Path) -> dict[str, str]:
    """The documented file names -> committed files of the same formats."""
    gz = tmp_path / "adresses-45.csv.gz"
    gz.write_bytes(gzip.compress(BAN.read_bytes()))
    bins = tmp_path / "parc-de-bacs.csv"
    bins.write_text(f"tag;address\n{TAG};{ADDRESS}\n", encoding="utf-8")
    return {"/var/lib/trivue": str(tmp_path / "var-lib-trivue"), "metropole.osm.pbf": str(STREETS),
            "adresses-45.csv.gz": str(gz), "parc-de-bacs.csv": str(bins)}


def run_trivue(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "trivue", *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"trivue {shlex.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}"
    return done.stdout


def test_the_single_machine_commands_give_the_server_its_streets_and_an_account(tmp_path: Path) -> None:
    swap = samples(tmp_path)
    checkout = tmp_path / "checkout"  # where the operator types: a default ./trivue-data lands here
    checkout.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIVUE_")}
    ran: list[str] = []
    server: dict[str, str] | None = None
    for line in single_machine_block():
        for name, sample in swap.items():
            line = line.replace(name, sample)
        words = shlex.split(line, comments=True)
        if not words or words[0] in INSTALL_STEPS:
            continue
        stdin = None
        if "|" in words:  # echo 'passphrase' | trivue users add ...
            cut = words.index("|")
            assert words[0] == "echo", line
            stdin, words = " ".join(words[1:cut]) + "\n", words[cut + 1:]
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            env[name] = value
            continue
        line_env = dict(env)
        while "=" in words[0] and not words[0].startswith("-"):
            name, _, value = words.pop(0).partition("=")
            line_env[name] = value
        assert PurePosixPath(words[0]).name == "trivue", f"unexpected documented command: {line}"
        if words[1] == "server":
            server = line_env  # checked below through the settings the server would read
            continue
        run_trivue(words[1:], line_env, checkout, stdin)
        ran.append(words[1])
    assert ran[:3] == ["streets", "addresses", "bins"], ran
    assert server is not None, "section 1 never starts the server"
    # What the server of the documented line opens: the streets, the bin and an admin are there.
    stats = run_trivue(["streets", "stats"], server, checkout)
    assert re.search(r"Rennes\s*│\s*[1-9]\d*\s*│", stats), stats
    assert "1 bins registered" in run_trivue(["bins", "stats"], server, checkout)
    assert re.search(r"^\S+\tadmin\tactive", run_trivue(["users", "list"], server, checkout), re.MULTILINE)


def _under(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return path == folder or folder in path.parents


def test_the_compose_server_keeps_its_data_dir_on_a_volume() -> None:
    """Published models (<data_dir>/models), letters (<data_dir>/reminders) and photos must outlive
    the container: every folder the server writes lies on one of its volumes."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    workdir = PurePosixPath(re.findall(r"^WORKDIR (\S+)", final_stage, re.MULTILINE)[-1])
    image_env = dict(re.findall(r"(TRIVUE_\w+)=(\S+)", " ".join(re.findall(r"^ENV (.*)$", final_stage,
                                                                               re.MULTILINE))))
    service = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text(encoding="utf-8"))["services"]["server"]
    env = {**image_env, **(service.get("environment") or {})}
    data_dir = workdir / env.get("TRIVUE_DATA_DIR", "trivue-data")  # an absolute value replaces workdir
    evidence_dir = workdir / env.get("TRIVUE_EVIDENCE_DIR", str(data_dir / "evidence"))
    mounts = [PurePosixPath(volume.split(":")[1]) for volume in service.get("volumes", [])]
    for name, folder in (("data_dir", data_dir), ("evidence_dir", evidence_dir)):
        assert any(_under(folder, mount) for mount in mounts), f"{name} {folder} is on no volume of {mounts}"


def documented_broker_config_destination() -> PurePosixPath:
    """Where docs/security.md's install copies deploy/mosquitto/mosquitto.conf."""
    found = re.findall(r"^sudo cp deploy/mosquitto/mosquitto\.conf (\S+)", SECURITY.read_text(encoding="utf-8"),
                       re.MULTILINE)
    assert len(found) == 1, found
    return PurePosixPath(found[0])


@pytest.mark.skipif(tools_missing() is not None, reason=str(tools_missing()))
def test_the_documented_broker_install_starts_on_debians_mosquitto(tmp_path: Path) -> None:
    broker = SecuredMosquitto(tmp_path)
    broker.prepare()  # the shipped config, paths and ports rewritten: what the operator copies
    shipped = tmp_path / "mosquitto.conf"
    destination = documented_broker_config_destination()
    if destination.parent.name == "conf.d":  # beside Debian's own main file, which includes conf.d
        conf_d = tmp_path / "conf.d"
        conf_d.mkdir()
        shutil.copy(shipped, conf_d / destination.name)
        main = tmp_path / "debian-mosquitto.conf"
        main.write_text(DEBIAN_MOSQUITTO_CONF.format(data=tmp_path / "data", conf_d=conf_d))
        shutil.copy(main, shipped)  # SecuredMosquitto starts `mosquitto -c <workdir>/mosquitto.conf`
    else:
        assert destination == PurePosixPath("/etc/mosquitto/mosquitto.conf"), destination
    try:
        broker.start()  # raises with Mosquitto's log when it exits instead of listening
    finally:
        broker.stop()


def _mosquitto_drops_root() -> str | None:
    """Why the next test cannot run here, or None: it needs root and Debian's ``mosquitto`` user."""
    if tools_missing() is not None:
        return tools_missing()
    if os.geteuid() != 0:
        return "not root: Mosquitto keeps the caller's user and never drops to its own"
    if subprocess.run(["id", "mosquitto"], capture_output=True).returncode != 0:
        return "no mosquitto user (Debian's package makes one)"
    return None


@pytest.mark.skipif(_mosquitto_drops_root() is not None, reason=str(_mosquitto_drops_root()))
def test_mosquitto_started_by_root_reads_the_certificates_make_certs_wrote() -> None:
    """As docs/security.md installs it: root runs make-certs.sh into /etc/mosquitto/trivue/tls, and
    Mosquitto 2, started by root, drops to its own user before it reads the CA, certificate and key.
    The script's ``umask 077`` made the tls folder 0700 root: Mosquitto could not even reach the CA
    (``Unable to load CA certificates ... Permission denied``) and did not start. The suite's broker
    runs as the caller's user (``user root``), so it never met this."""
    # Not pytest's tmp_path (0700, closed to the mosquitto user): a folder as `install -d` makes it.
    base = Path(tempfile.mkdtemp(prefix="trivue-tls-"))
    try:
        base.chmod(0o755)
        subprocess.run([str(DEPLOY / "tls" / "make-certs.sh"), str(base / "tls"), "localhost"],
                       check=True, capture_output=True, timeout=60)
        port = free_port()
        conf = base / "mosquitto.conf"
        conf.write_text(f"per_listener_settings false\nallow_anonymous true\nlistener {port} 127.0.0.1\n"
                        f"cafile {base}/tls/ca.crt\ncertfile {base}/tls/server.crt\nkeyfile {base}/tls/server.key\n")
        broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            for _ in range(100):  # listening, or exited saying why
                if broker.poll() is not None or port_open(port):
                    break
                time.sleep(0.1)
            assert broker.poll() is None, f"Mosquitto did not start:\n{broker.communicate()[0][-2000:]}"
        finally:
            broker.terminate()
            broker.wait(10)
    finally:
        shutil.rmtree(base)


def metropole_commands() -> list[str]:
    """The lines of section 2's sh blocks, in order (server.env's included)."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    section = re.search(r"^## 2\. .*?(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/deployment.md: no section 2"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(0), re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_metropole_install_creates_the_database_before_the_first_command() -> None:
    """Section 2 named a URL, ``postgresql://trivue:...@127.0.0.1/trivue``, and ran ``trivue streets
    import`` on it with no word of creating that role and database: the first command failed on
    ``role "trivue" does not exist``. PostgreSQL 15 lets no other role create tables in ``public``,
    so the database is created owned by the URL's role."""
    lines = metropole_commands()
    url = next(re.search(r"TRIVUE_DATABASE_URL=postgresql://(\w+):[^@\s]*@[^/\s]+/(\w+)", line)
               for line in lines if "TRIVUE_DATABASE_URL=" in line)
    assert url, lines
    role, database = url.groups()
    first_command = next(i for i, line in enumerate(lines) if re.search(r"bin/trivue \w", line))
    before = [shlex.split(line, comments=True) for line in lines[:first_command]]
    assert any("createuser" in words and words[-1] == role for words in before), lines[:first_command]
    created = [words[-1] for words in before if "psql" in words]  # createdb's "--owner R D" misleads tests/test_docs.py
    assert f"CREATE DATABASE {database} OWNER {role}" in created, lines[:first_command]


def test_the_metropole_install_imports_what_the_single_machine_one_does() -> None:
    """Section 2's list left out the bin registry that section 1 imports: tagged lifts then landed by
    their GPS fix alone."""
    def imports(lines: list[str]) -> set[str]:
        return {" ".join(found) for line in lines for found in re.findall(r"bin/trivue (\w+) (\w+)", line)}

    assert imports(single_machine_block()) <= imports(metropole_commands())


def test_the_restore_drill_gives_the_database_to_the_servers_role() -> None:
    """The drill's ``createdb trivue`` made a database owned by postgres: on PostgreSQL 15 the server's
    role may not create tables in its ``public`` schema, so the migration the drill promises ("if the
    backup is older than the code") failed on ``permission denied for schema public``."""
    drill = re.search(r"\*\*Restore drill\*\*.*?^1\. `([^`]*)`", DEPLOYMENT.read_text(encoding="utf-8"),
                      re.MULTILINE | re.DOTALL)
    assert drill, "docs/deployment.md: no restore drill"
    create = shlex.split(drill.group(1).split("&&")[0])
    assert "createdb" in create and create[create.index("--owner") + 1] == "trivue", create
