import socket

import pytest

from lambdalake import broker
from lambdalake.errors import LambdalakeError


def test_taken_port_is_a_one_line_error(base_settings, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = base_settings.replace(kafka={"bootstrap_servers": f"127.0.0.1:{port}"},
                                         state={"dir": str(tmp_path)})
        with pytest.raises(LambdalakeError, match=f"port 127.0.0.1:{port} is taken"):
            broker.start(settings)


def test_local_broker_refuses_a_remote_address(base_settings):
    settings = base_settings.replace(kafka={"bootstrap_servers": "kafka-1.example:9092"})
    with pytest.raises(LambdalakeError, match="only runs on one loopback address"):
        broker.start(settings)


def test_stale_pid_file_is_reported(base_settings, tmp_path):
    settings = base_settings.replace(state={"dir": str(tmp_path)})
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "broker.pid").write_text("999999")
    status = broker.status(settings)
    assert not status.running and "stale pid file" in status.detail


def test_free_port_is_bindable_and_outside_the_kernels_ephemeral_range():
    ephemeral = broker._ephemeral_ports()
    if ephemeral.start < 11000:
        pytest.skip(f"this kernel's ephemeral ports start at {ephemeral.start}")
    for _ in range(20):
        port = broker.free_port()
        assert port not in ephemeral  # no outgoing connection can take it before the broker
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_the_broker_runs_the_java_of_java_home(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    command = broker._java(["a.jar"], "kafka.Kafka", "server.properties", logs=tmp_path,
                           heap="128m")
    assert command[0] == str(tmp_path / "jdk" / "bin" / "java")
    monkeypatch.delenv("JAVA_HOME")
    assert broker._java(["a.jar"], "kafka.Kafka", logs=tmp_path, heap="128m")[0].endswith("java")
