import datetime as dt

from pyspark.sql import functions as F

from lambdalake.config import ValidationSettings
from lambdalake.generators import stream, tolls
from speed.tolls.validate import toll_rules
from speed.validate import validate_records
from tests.speed.test_validate import kafka_rows


def test_generated_events_are_accepted_and_malformed_ones_quarantined(spark):
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    options = tolls.TollsOptions(count=400, seed=11, start=start,
                                 faults=stream.Faults(malformed_fraction=0.1, late_fraction=0.1))
    records = list(tolls.toll_records(options))
    df = kafka_rows(spark, *[r.value for r in records], keys=[r.key for r in records]).withColumn(
        "ingested_at", F.current_timestamp())
    validated = df.transform(validate_records(toll_rules(ValidationSettings()))).orderBy("offset")
    outcome = [r.is_accepted for r in validated.collect()]
    assert outcome == [r.kind == "event" for r in records]
