from pathlib import Path

import pytest

from lambdalake.config import describe, load_settings, local_path
from lambdalake.errors import LambdalakeError


def test_defaults_are_the_embedded_local_setup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.spark.master == "local[2]"
    assert settings.lake.root == str(tmp_path / ".lambdalake" / "lake")
    assert settings.topics.tolls_events == "tolls.events"


def test_environment_overrides_file(tmp_path):
    config = tmp_path / "conf.toml"
    config.write_text('[kafka]\nbootstrap_servers = "file:1"\n[lake]\nroot = "data/lake"\n'
                      '[spark.conf]\n"spark.sql.shuffle.partitions" = "3"\n')
    settings = load_settings({"LAMBDALAKE_CONFIG": str(config),
                              "LAMBDALAKE_KAFKA_BOOTSTRAP_SERVERS": "env:2",
                              "LAMBDALAKE_KAFKA_TOPIC_PARTITIONS": "7"})
    assert settings.kafka.bootstrap_servers == "env:2"
    assert settings.kafka.topic_partitions == 7
    assert settings.lake.root == str(tmp_path / "data" / "lake")  # relative to the file
    assert settings.spark.conf == {"spark.sql.shuffle.partitions": "3"}


def test_s3a_paths_are_kept_as_uris():
    settings = load_settings({"LAMBDALAKE_LAKE_ROOT": "s3a://bucket/lake"})
    assert settings.lake.root == "s3a://bucket/lake"


@pytest.mark.parametrize("content, message", [
    ('[kafka]\nbootstap_servers = "x"\n', "did you mean kafka.bootstrap_servers"),
    ('[kafak]\n', "unknown setting kafak"),
    ('[kafka]\ntopic_partitions = "many"\n', "must be a whole number"),
    ('[kafka]\nmax_poll_records = 0\n', "kafka.max_poll_records must be at least 1, got 0"),
    ('[kafka\n', "is not valid TOML"),
])
def test_bad_config_file_is_one_readable_error(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(LambdalakeError, match=message) as info:
        load_settings({"LAMBDALAKE_CONFIG": str(config)})
    assert "\n" not in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(LambdalakeError, match="LAMBDALAKE_KAFKA_FAIL_ON_DATA_LOSS"):
        load_settings({"LAMBDALAKE_KAFKA_FAIL_ON_DATA_LOSS": "maybe"})


def test_missing_config_file_is_named():
    with pytest.raises(LambdalakeError, match="not a file"):
        load_settings({"LAMBDALAKE_CONFIG": "/nonexistent/lambdalake.toml"})


def test_documented_config_file_matches_the_settings():
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings({"LAMBDALAKE_CONFIG": str(repo / "lambdalake.toml")})
    documented = (repo / "lambdalake.toml").read_text()
    for name, env, _value in describe(settings):
        assert name.split(".")[1] in documented, f"{name} is not documented"
        assert env in documented, f"{env} is not documented"


@pytest.mark.parametrize(("location", "expected"), [
    ("/data/lake", Path("/data/lake")), ("file:/data/lake", Path("/data/lake")),
    ("file:///data/lake", Path("/data/lake")), ("s3a://bucket/lake", None),
    ("abfss://c@account.dfs.core.windows.net/lake", None),
])
def test_local_path_of_a_location(location, expected):
    assert local_path(location) == expected
