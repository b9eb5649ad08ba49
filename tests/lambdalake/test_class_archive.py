import pytest

from lambdalake import class_archive, jvm
from lambdalake.spark import spark_conf


@pytest.fixture
def fake_cache(base_settings, tmp_path):
    """Settings whose JVM cache holds a fetched (fake) spark profile and no archive."""
    settings = base_settings.replace(jvm={"cache_dir": str(tmp_path / "jvm")})
    folder = jvm.cache_folder(settings, "spark")
    folder.mkdir(parents=True)
    (folder / "delta-spark.jar").write_bytes(b"")
    (folder / ".complete").write_text("delta-spark.jar")
    return settings


def test_the_driver_uses_the_archive_only_once_it_exists(fake_cache):
    assert class_archive.java_options(fake_cache) == ""
    assert "SharedArchiveFile" not in spark_conf(fake_cache, "x")["spark.driver.extraJavaOptions"]
    path = class_archive.archive_path(fake_cache)
    path.write_bytes(b"archive")
    options = spark_conf(fake_cache, "x")["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={path}" in options
    assert options.startswith("-Dlog4j2.configurationFile=")  # the factory's own option stays


def test_other_jars_mean_another_archive(fake_cache):
    before = class_archive.archive_path(fake_cache)
    folder = jvm.cache_folder(fake_cache, "spark")
    (folder / "another.jar").write_bytes(b"")
    assert class_archive.archive_path(fake_cache) != before


def test_a_damaged_archive_is_refused(base_settings, tmp_path):
    """A truncated archive crashes the JVM (SIGBUS) rather than being ignored: `build` checks
    the one it made with `_usable` before putting it in place."""
    archive = class_archive.archive_path(base_settings)
    if not archive.exists():
        pytest.skip("no class archive in the JVM cache (make setup makes it)")
    assert class_archive._usable(archive)
    damaged = tmp_path / "damaged.jsa"
    with archive.open("rb") as source:
        damaged.write_bytes(source.read(1_000_000))
    assert not class_archive._usable(damaged)


def test_the_test_sessions_driver_started_with_the_archive(spark, base_settings):
    archive = class_archive.archive_path(base_settings)
    if not archive.exists():
        pytest.skip("no class archive in the JVM cache (make setup makes it)")
    arguments = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
                     .getInputArguments())
    assert f"-XX:SharedArchiveFile={archive}" in arguments


def test_a_failed_warm_up_is_one_line_and_leaves_nothing(fake_cache, monkeypatch, capsys):
    monkeypatch.setenv("LAMBDALAKE_SPARK_MASTER", "nowhere://")  # the child's session fails
    assert class_archive.build(fake_cache, log=False) is None
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("lambdalake: no class archive (jobs start "
                                                 "without it): ")
    assert not list(class_archive.archive_path(fake_cache).parent.glob("spark-classes-*"))
