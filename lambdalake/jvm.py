"""The pinned JVM artifacts: fetched once from Maven Central by `lambdalake setup`, then offline.

Two classpaths come from `resources/pom.xml`: the jars Spark needs beyond pyspark's own (Delta Lake,
Spark's Kafka connector) and the local Kafka broker. They live in the JVM cache under a folder named
after a hash of the pom, so changing a pin fetches afresh and never mixes versions.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from lambdalake.config import Settings
from lambdalake.errors import LambdalakeError

PROFILES = ("spark", "kafka")
_DONE = ".complete"
# the Java releases the pinned Spark line (3.5) runs on; the project is tested on 17. From Java 23
# on, Spark 3.5's Hadoop client fails at start (`getSubject is not supported`).
SUPPORTED_JAVA = (11, 17, 21)


def _pom_text() -> str:
    return resources.files("lambdalake.resources").joinpath("pom.xml").read_text()


def _pom_value(name: str) -> str:
    text = _pom_text()
    start = text.index(f"<{name}>") + len(name) + 2
    return text[start : text.index(f"</{name}>", start)]


def pinned_versions() -> dict[str, str]:
    """Versions pinned in the pom: spark, delta, kafka, scala_binary."""
    return {
        "spark": _pom_value("spark.version"),
        "delta": _pom_value("delta.version"),
        "kafka": _pom_value("kafka.version"),
        "scala_binary": _pom_value("scala.binary"),
    }


def spark_packages() -> list[str]:
    """Maven coordinates to give `spark-submit --packages` on a cluster."""
    v = pinned_versions()
    return [
        f"io.delta:delta-spark_{v['scala_binary']}:{v['delta']}",
        f"org.apache.spark:spark-sql-kafka-0-10_{v['scala_binary']}:{v['spark']}",
    ]


def cache_folder(settings: Settings, profile: str) -> Path:
    """Folder holding one profile's jars for the current pins."""
    digest = hashlib.sha256(_pom_text().encode()).hexdigest()[:12]
    return Path(settings.jvm.cache_dir).expanduser() / f"{profile}-{digest}"


def is_fetched(settings: Settings, profile: str) -> bool:
    """Whether a profile's jars are complete in the cache."""
    return (cache_folder(settings, profile) / _DONE).exists()


def jars(settings: Settings, profile: str) -> list[str]:
    """The jar files of a profile, or a readable error saying to run setup."""
    if not is_fetched(settings, profile):
        raise LambdalakeError(
            f"the {profile} JVM artifacts are not in {cache_folder(settings, profile)}: "
            "run `make setup` (or `lambdalake setup`) once while Maven Central is reachable"
        )
    return sorted(str(p) for p in cache_folder(settings, profile).glob("*.jar"))


def java_executable() -> str | None:
    """The `java` pyspark launches: JAVA_HOME's, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else shutil.which("java")


def java_major_version(java: str) -> int | None:
    """The major version of the JDK a `java` belongs to, from the JDK's `release` file (no JVM
    is started); None when it cannot be told."""
    try:
        release = (Path(os.path.realpath(java)).parent.parent / "release").read_text()
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release, re.MULTILINE)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0_392" is Java 8


def check_java() -> None:
    """Refuse in one line a Java that local Spark jobs cannot start on, before its JVM would
    print a stack trace; a Java whose version cannot be told is let through."""
    java = java_executable()
    if java is None or not Path(java).exists():
        where = (f"JAVA_HOME is {os.environ['JAVA_HOME']}, which has no bin/java"
                 if os.environ.get("JAVA_HOME") else "no `java` on PATH")
        raise LambdalakeError(f"{where}: install Java 17 (or 11, 21) or point JAVA_HOME at one")
    major = java_major_version(java)
    if major is not None and major not in SUPPORTED_JAVA:
        spark = pinned_versions()["spark"]
        raise LambdalakeError(
            f"{java} is Java {major}, and Spark {spark} runs on Java "
            f"{', '.join(map(str, SUPPORTED_JAVA))} (tested on 17): point JAVA_HOME at one of those"
        )


def fetch(settings: Settings, log: bool = True) -> None:
    """Fetch every profile not yet in the cache with Maven; quick when all are there."""
    missing = [p for p in PROFILES if not is_fetched(settings, p)]
    if not missing:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LambdalakeError(
            "Maven (`mvn`) is needed once to fetch the pinned JVM artifacts from Maven Central: "
            "install it (e.g. `apt-get install maven`) and run `make setup` again"
        )
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_pom_text())
        for profile in missing:
            target = cache_folder(settings, profile)
            if log:
                print(f"lambdalake: fetching the {profile} JVM artifacts into {target} ...",
                      flush=True)
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            cmd = [mvn, "-B", "-q", "-f", str(pom), "-P", profile,
                   "dependency:copy-dependencies", "-DincludeScope=runtime",
                   f"-DoutputDirectory={target}"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                lines = [ln for ln in (run.stdout + run.stderr).splitlines() if "ERROR" in ln]
                reason = lines[0] if lines else f"mvn exited with {run.returncode}"
                raise LambdalakeError(f"fetching the {profile} JVM artifacts failed: {reason}")
            (target / _DONE).write_text("\n".join(sorted(p.name for p in target.glob("*.jar"))))
