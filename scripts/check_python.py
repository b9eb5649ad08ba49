"""Fail `make setup` with one readable line when the Python or Java on this machine will not do."""

import shutil
import subprocess
import sys

if sys.version_info < (3, 10) or sys.version_info >= (3, 13):
    sys.exit(f"lambdalake: error: Python 3.10-3.12 is needed, found {sys.version.split()[0]}")
java = shutil.which("java")
if java is None:
    sys.exit("lambdalake: error: Java 17 (or 11) is needed and `java` is not on PATH: "
             "install a JDK, e.g. `apt-get install openjdk-17-jdk-headless`")
out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
first = out.splitlines()[0] if out else ""
try:
    version = first.split('"')[1]
    major = int(version.split(".")[1] if version.startswith("1.") else version.split(".")[0])
except (IndexError, ValueError):
    major = 0
if major not in (11, 17):
    sys.exit(f"lambdalake: error: Spark 3.5 needs Java 11 or 17, found `{first}`: "
             "install openjdk-17 and put it first on PATH (or set JAVA_HOME)")
