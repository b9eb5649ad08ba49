"""lambdalake: shared runtime (config, the SparkSession factory, lake paths, the local Kafka broker, CLI)."""

__version__ = "0.1.0"
