"""The SparkSession factory: what the driver JVM it starts runs with."""


def test_the_local_driver_runs_the_parallel_collector(spark):
    # the factory's DRIVER_GC reached the JVM: its collectors are the parallel ones, not G1's
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory \
        .getGarbageCollectorMXBeans()
    names = {bean.getName() for bean in beans}
    assert names == {"PS Scavenge", "PS MarkSweep"}, names


def test_the_local_driver_compiles_huge_methods(spark):
    # the factory's DRIVER_JIT reached the JVM: a generated method over 8,000 bytes of bytecode
    # (a domain's validation) is compiled, not interpreted
    jvm = spark.sparkContext._jvm
    hotspot = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    assert hotspot.getVMOption("DontCompileHugeMethods").getValue() == "false"
