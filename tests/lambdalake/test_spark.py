"""The SparkSession factory: what the driver JVM it starts runs with."""

import re

import pytest

from lambdalake.errors import LambdalakeError
from lambdalake.spark import DRIVER_JIT, DRIVER_YOUNG_MAX_MIB, driver_young_option, memory_mib


def _vm_option(spark, name: str) -> str:
    jvm = spark.sparkContext._jvm
    hotspot = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    return hotspot.getVMOption(name).getValue()


def test_the_local_driver_runs_the_parallel_collector(spark):
    # the factory's DRIVER_GC reached the JVM: its collectors are the parallel ones, not G1's
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory \
        .getGarbageCollectorMXBeans()
    names = {bean.getName() for bean in beans}
    assert names == {"PS Scavenge", "PS MarkSweep"}, names


def test_the_local_driver_compiles_huge_methods(spark):
    # the factory's DRIVER_JIT reached the JVM: a generated method over 8,000 bytes of bytecode
    # (a domain's validation) is compiled, not interpreted
    assert _vm_option(spark, "DontCompileHugeMethods") == "false"


def test_the_local_driver_keeps_its_second_compiler_to_hot_code(spark):
    # the factory's C2 thresholds reached the JVM (HotSpot's defaults are a quarter of them)
    thresholds = dict(re.findall(r"-XX:(Tier4\w+)=(\d+)", DRIVER_JIT))
    assert len(thresholds) == 4, DRIVER_JIT
    assert {name: _vm_option(spark, name) for name in thresholds} == thresholds


def test_the_local_driver_caps_its_young_generation(spark, base_settings):
    # the factory's young-generation cap reached the JVM (the collector's own sizing would let
    # it grow to a third of the heap)
    heap_mib = memory_mib(base_settings.spark.driver_memory)
    expected = min(DRIVER_YOUNG_MAX_MIB, heap_mib // 4) * 1024 * 1024
    assert int(_vm_option(spark, "MaxNewSize")) == expected


@pytest.mark.parametrize(("memory", "mib"), [("4g", 4096), ("4096m", 4096), ("2G", 2048),
                                             ("8gb", 8192), ("512", 512), ("1t", 1024**2)])
def test_memory_sizes_read_as_spark_reads_them(memory, mib):
    assert memory_mib(memory) == mib


@pytest.mark.parametrize("memory", ["lots", "4 gigs", "-1g", "0", ""])
def test_a_memory_size_that_is_not_one_is_named_in_one_line(memory):
    with pytest.raises(LambdalakeError, match="spark.driver_memory .* is not a memory size"):
        memory_mib(memory)


def test_the_young_generation_is_768_mib_or_a_quarter_of_a_smaller_heap():
    assert driver_young_option("4g") == "-XX:MaxNewSize=768m"
    assert driver_young_option("8g") == "-XX:MaxNewSize=768m"
    assert driver_young_option("2g") == "-XX:MaxNewSize=512m"
    assert driver_young_option("1g") == "-XX:MaxNewSize=256m"


def test_the_factory_refuses_a_java_spark_cannot_start_on_before_launching_it(
        tmp_path, monkeypatch, base_settings):
    from lambdalake.spark import create_spark_session
    from tests.lambdalake.test_jvm import fake_jdk

    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", "25.0.3")))
    with pytest.raises(LambdalakeError, match="is Java 25"):
        create_spark_session(base_settings, "never-started")
