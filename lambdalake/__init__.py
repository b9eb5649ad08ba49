"""lambdalake: shared runtime (config, SparkSession factory, lake paths, local Kafka, CLI)."""

__version__ = "0.1.0"
