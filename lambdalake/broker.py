"""The embedded single-node Apache Kafka broker (KRaft), for laptops, the demo and the tests.

Its jars come from the JVM cache (`lambdalake setup`); its data, logs and pid file live under
`<state dir>/kafka`. It listens on the host and port of `kafka.bootstrap_servers` (which must be a
single loopback address) and runs its controller on `kafka.local_controller_port`.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lambdalake import jvm, processes
from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the local broker runs, its pid and its address."""

    running: bool
    pid: int | None
    address: str
    detail: str


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_CHOSEN_PORT = 10000


def _ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections and to binds of port 0."""
    try:
        low, high = (int(n) for n in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (for a private broker: tests, benchmarks).

    It is chosen below the kernel's ephemeral range where there is room, so that no outgoing
    connection and no other listener on port 0 can take it between this call and the broker's
    bind (a port the kernel handed out here once was taken so, and the broker failed to start).
    """
    ephemeral = _ephemeral_ports()
    if ephemeral.start - _LOWEST_CHOSEN_PORT >= 1000:
        rng = random.SystemRandom()
        for _ in range(200):
            port = rng.randrange(_LOWEST_CHOSEN_PORT, ephemeral.start)
            if _port_free(host, port):
                return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _address(settings: Settings) -> tuple[str, int]:
    servers = settings.kafka.bootstrap_servers.split(",")
    host, _, port = servers[0].strip().rpartition(":")
    if len(servers) != 1 or host not in _LOOPBACK or not port.isdigit():
        raise LambdalakeError(
            f"kafka.bootstrap_servers is {settings.kafka.bootstrap_servers!r}: the local broker "
            "only runs on one loopback address such as 127.0.0.1:9092 (for a cluster, do not "
            "start the local broker)"
        )
    return ("127.0.0.1" if host == "localhost" else host), int(port)


def _folder(settings: Settings) -> Path:
    return Path(settings.state.dir) / "kafka"


def _pid_file(settings: Settings) -> Path:
    return _folder(settings) / "broker.pid"


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def status(settings: Settings) -> BrokerStatus:
    """The local broker's status, from its pid file and its port."""
    host, port = _address(settings)
    address = f"{host}:{port}"
    pid_file = _pid_file(settings)
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    if pid is not None and processes.alive(pid):
        state = "accepting connections" if _accepts(host, port) else "starting or unresponsive"
        return BrokerStatus(True, pid, address, f"running (pid {pid}) on {address}, {state}")
    if pid is not None:
        return BrokerStatus(False, pid, address,
                            f"not running: pid {pid} in {pid_file} is dead (stale pid file)")
    return BrokerStatus(False, None, address, f"not running ({address})")


def _server_properties(settings: Settings, host: str, port: int, data: Path) -> str:
    ctrl = settings.kafka.local_controller_port
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{ctrl}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data}",
        f"num.partitions={settings.kafka.topic_partitions}",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        "log.retention.hours=168",
        "",
    ])


def _java(classpath: list[str], main: str, *args: str, logs: Path, heap: str) -> list[str]:
    """The broker's command line: the `java` of JAVA_HOME, else of PATH (as Kafka's own scripts
    and the Spark jobs choose it)."""
    log4j = resources.files("lambdalake.resources").joinpath("kafka-log4j.properties")
    return [jvm.java_executable() or "java", f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{log4j}", f"-Dkafka.logs.dir={logs}",
            "-cp", os.pathsep.join(classpath), main, *args]


def start(settings: Settings, timeout_s: float = 60.0, heap: str = "512m") -> BrokerStatus:
    """Start the local broker and return once it accepts connections (no-op when running)."""
    current = status(settings)
    if current.running:
        return current
    host, port = _address(settings)
    ctrl = settings.kafka.local_controller_port
    for p in (port, ctrl):
        if not _port_free(host, p):
            raise LambdalakeError(
                f"port {host}:{p} is taken by another process: stop it, or choose other ports "
                "with LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS / LAMBDALAKE_KAFKA_LOCAL_CONTROLLER_PORT"
            )
    classpath = jvm.jars(settings, "kafka")
    folder = _folder(settings)
    data, logs = folder / "data", folder / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    props = folder / "server.properties"
    props.write_text(_server_properties(settings, host, port, data))
    if not (data / "meta.properties").exists():
        fmt = subprocess.run(
            _java(classpath, "kafka.tools.StorageTool", "format", "-t",
                  uuid.uuid4().hex[:22], "-c", str(props), logs=logs, heap="128m"),
            capture_output=True, text=True)
        if fmt.returncode != 0:
            raise LambdalakeError(f"formatting the broker's storage in {data} failed: "
                                  f"{(fmt.stderr or fmt.stdout).strip().splitlines()[-1]}")
    out = open(logs / "broker.out", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(_java(classpath, "kafka.Kafka", str(props), logs=logs, heap=heap),
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out.close()
    _pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file(settings).unlink(missing_ok=True)
            raise LambdalakeError(f"the local Kafka broker exited with {proc.returncode} while "
                                  f"starting: see {logs / 'server.log'}")
        if _accepts(host, port) and _metadata_ready(host, port):
            return status(settings)
        time.sleep(0.3)
    stop(settings)
    raise LambdalakeError(f"the local Kafka broker did not accept connections on {host}:{port} "
                          f"within {timeout_s:.0f}s: see {logs / 'server.log'}")


def _metadata_ready(host: str, port: int) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def stop(settings: Settings, timeout_s: float = 30.0) -> BrokerStatus:
    """Stop the local broker cleanly (SIGTERM, then SIGKILL after `timeout_s`)."""
    pid_file = _pid_file(settings)
    current = status(settings)
    if not current.running:
        pid_file.unlink(missing_ok=True)
        return current
    pid = current.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while processes.alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.2)
    if processes.alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        _reap(pid)
    pid_file.unlink(missing_ok=True)
    return status(settings)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
