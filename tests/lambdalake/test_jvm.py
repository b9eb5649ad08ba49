from pathlib import Path

import pytest

from lambdalake import jvm
from lambdalake.errors import LambdalakeError


def fake_jdk(root: Path, version: str | None) -> Path:
    """A folder shaped like a JDK: bin/java and, when a version is given, its release file."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "java").write_text("")
    if version is not None:
        (root / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return root


@pytest.mark.parametrize(("version", "major"), [
    ("17.0.15", 17), ("25.0.3", 25), ("21", 21), ("1.8.0_392", 8), ("11.0.2", 11), (None, None),
])
def test_the_java_major_version_is_read_from_the_jdks_release_file(tmp_path, version, major):
    java = fake_jdk(tmp_path / "jdk", version) / "bin" / "java"
    assert jvm.java_major_version(str(java)) == major


@pytest.mark.parametrize("version", ["17.0.15", "11.0.22", "21.0.5"])
def test_a_supported_java_passes(tmp_path, monkeypatch, version):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", version)))
    jvm.check_java()


@pytest.mark.parametrize(("version", "major"), [("25.0.3", 25), ("23.0.1", 23), ("1.8.0_392", 8)])
def test_an_unsupported_java_is_one_line_naming_it(tmp_path, monkeypatch, version, major):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", version)))
    with pytest.raises(LambdalakeError, match=f"is Java {major}, and Spark .* runs on Java 11, 17"):
        jvm.check_java()


def test_a_java_home_without_java_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(LambdalakeError, match=f"JAVA_HOME is {tmp_path}, which has no bin/java"):
        jvm.check_java()


def test_the_java_on_path_is_checked_when_java_home_is_unset(tmp_path, monkeypatch):
    jdk = fake_jdk(tmp_path / "jdk", "25.0.3")
    (jdk / "bin" / "java").chmod(0o755)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(jdk / "bin"))
    with pytest.raises(LambdalakeError, match="is Java 25"):
        jvm.check_java()
