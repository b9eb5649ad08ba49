"""The tolls invariants under a seeded randomized replay (SPEC 6, issue 3).

More than 50,000 records with late (up to 2 days), out-of-order, duplicate and malformed ones go
through the real broker, streaming job and batch job in waves, with batch runs and a threshold
change in between. After every step every merged report must equal the same report computed by
DuckDB directly over the accepted events so far, the alerts must be exactly those the ground truth
implies (also on the Kafka topic), and the record counts must balance.
"""

import datetime as dt
import json
import random
from collections import defaultdict
from decimal import Decimal

from kafka import KafkaConsumer

from batch import tolls_reports
from lambdalake import customers, topics
from lambdalake.generators import stream, tolls
from lambdalake.groundtruth import differences, expected_reports
from serving.engine import MERGED_VIEWS, Serving
from speed import tolls_stream

SEED = 20261123
WAVES = 8
PER_WAVE = 6_600
CUSTOMERS = 150


def monthly_totals(events):
    totals = defaultdict(Decimal)
    for e in events:
        totals[(e["customer_id"], e["event_time"].date().replace(day=1))] += e["amount"]
    return totals


def alert_topic_messages(settings):
    consumer = KafkaConsumer(settings.topics.tolls_alerts,
                             bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return [(m.key.decode(), json.loads(m.value)) for m in consumer]
    finally:
        consumer.close()


def test_merged_views_alerts_and_counts_stay_exact(kafka_broker, settings, spark):
    settings = settings.replace(topics={"tolls_alerts": f"{settings.topics.tolls_events}.alerts"})
    topics.ensure_topics(settings, settings.topics.tolls_events, settings.topics.tolls_alerts)
    rng = random.Random(SEED)
    customers.write_customers(settings, tolls.customers(CUSTOMERS, SEED))
    thresholds = customers.thresholds(settings)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    accepted: list[dict] = []
    produced = 0
    expected_alerts: set[tuple] = set()
    serving = Serving(settings)
    batch_runs = 0

    def check(step):
        diffs = differences(expected_reports(accepted), serving.rows(MERGED_VIEWS))
        assert not diffs, f"after {step}: {diffs}"

    for wave in range(WAVES):
        options = tolls.TollsOptions(
            count=PER_WAVE, seed=rng.randrange(2**31), customers=CUSTOMERS,
            start=now - dt.timedelta(hours=WAVES - wave), span=dt.timedelta(hours=1),
            faults=stream.Faults(late_fraction=0.05, max_lateness=dt.timedelta(days=2),
                                 out_of_order_fraction=0.05, duplicate_fraction=0.02,
                                 malformed_fraction=0.01))
        report = tolls.produce(settings, tolls.toll_records(options), progress=False)
        accepted += report.events
        produced += report.sent
        tolls_stream.run(spark, settings, until_idle=True)
        totals = monthly_totals(accepted)
        expected_alerts |= {(c, m, thresholds[c]) for (c, m), spend in totals.items()
                            if thresholds.get(c) is not None and spend >= thresholds[c]}
        check(f"wave {wave}")

        if wave in (1, 3, 5, 6):
            tolls_reports.run(spark, settings)
            batch_runs += 1
            check(f"batch run {batch_runs} after wave {wave}")
        if wave == 3:  # raise some thresholds above the spend so far, and lower one below it
            spends = sorted(totals.items(), key=lambda kv: kv[0])
            for (customer_id, _month), spend in rng.sample(spends, 12):
                new = (spend * Decimal("1.25")).quantize(Decimal("0.01"))
                customers.set_threshold(settings, customer_id, new)
                thresholds[customer_id] = new
            lowered = next(c for c, t in sorted(thresholds.items()) if t is None)
            customers.set_threshold(settings, lowered, "10.00")
            thresholds[lowered] = Decimal("10.00")

    assert batch_runs >= 3 and produced >= 50_000 and len(accepted) > 48_000

    # alerts: exactly those the ground truth implies, once each, in the table and on the topic
    serving.refresh()
    rows = serving.con.execute(
        "select customer_id, month, threshold, spend, transaction_id, alert_id "
        "from speed.tolls_alerts").fetchall()
    assert {(c, m, t) for c, m, t, *_ in rows} == expected_alerts
    assert len(rows) == len(expected_alerts)
    by_id = {e["transaction_id"]: e for e in accepted}
    for customer_id, month, threshold, spend, transaction_id, _ in rows:
        crossing = by_id[transaction_id]
        assert crossing["customer_id"] == customer_id
        assert crossing["event_time"].date().replace(day=1) == month
        assert spend >= threshold > spend - crossing["amount"]
    messages = alert_topic_messages(settings)
    assert sorted(key for key, _ in messages) == sorted(r[5] for r in rows)
    assert all(Decimal(str(body["spend"])) >= Decimal(str(body["threshold"]))
               for _, body in messages)

    # nothing lost: every record is landed, quarantined or counted as a duplicate
    read, landed, quarantined, duplicates = serving.con.execute(
        "select sum(read_count), sum(landed_count), sum(quarantined_count), "
        "sum(duplicate_count) from speed.tolls_stream_progress").fetchone()
    assert read == produced == landed + quarantined + duplicates
    assert landed == len(accepted) and duplicates > 0 and quarantined > 0
    serving.close()
