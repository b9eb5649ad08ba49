"""The `lambdalake` command line. Run `lambdalake --help` for the commands."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lambdalake.config import Settings, describe, load_settings
from lambdalake.errors import LambdalakeError

if TYPE_CHECKING:  # imported where used, so `lambdalake --help` stays quick
    from lambdalake.generators.stream import Faults


def _setup(settings: Settings, _args: argparse.Namespace) -> int:
    from lambdalake import class_archive, jvm

    jvm.fetch(settings)
    jvm.check_java()  # the class archive's warm-up runs a local Spark job
    class_archive.build(settings)
    versions = jvm.pinned_versions()
    print(f"lambdalake: ready (Spark {versions['spark']}, Delta Lake {versions['delta']}, "
          f"Kafka broker {versions['kafka']}; JVM cache {settings.jvm.cache_dir})")
    return 0


def _config(settings: Settings, _args: argparse.Namespace) -> int:
    print(f"# settings from {settings.source}, then LAMBDALAKE_* variables")
    for name, env, value in describe(settings):
        print(f"{name:34} {env:42} {value}")
    return 0


def _kafka(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import broker

    action = {"start": broker.start, "stop": broker.stop, "status": broker.status}[args.action]
    result = action(settings)
    print(f"kafka: {result.detail}")
    return 0 if args.action != "status" or result.running else 1


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction must be between 0 and 1, got {text}")
    return value


def _add_stream_options(parser: argparse.ArgumentParser, what: str, count: int) -> None:
    """The options every event generator has: how many, seed, rate, event times, faults."""
    parser.add_argument("--count", type=int, default=count,
                        help=f"{what} to produce (default {count})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=None,
                        help="records per second (default: max)")
    parser.add_argument("--start", type=_parse_time, default=None,
                        help="event time of the first record (default: span before now)")
    parser.add_argument("--span-minutes", type=float, default=60.0,
                        help="event times spread over this many minutes (default 60)")
    for kind in ("late", "out-of-order", "duplicate", "malformed"):
        parser.add_argument(f"--{kind}-fraction", type=_fraction, default=0.0,
                            help=f"fraction of {kind} records (default 0)")


def _faults(args: argparse.Namespace) -> Faults:
    """The faults a generator's options asked for (`_add_stream_options`)."""
    from lambdalake.generators.stream import Faults

    return Faults(late_fraction=args.late_fraction,
                  out_of_order_fraction=args.out_of_order_fraction,
                  duplicate_fraction=args.duplicate_fraction,
                  malformed_fraction=args.malformed_fraction)


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import customers as customers_api
    from lambdalake import plazas as plazas_api
    from lambdalake.generators import tolls

    if args.write_customers:
        rows = tolls.customers(args.customers, args.seed)
        path = customers_api.write_customers(settings, rows)
        print(f"generate: wrote {len(rows)} customers to {path}")
    if args.write_plazas:
        rows = tolls.plazas()
        path = plazas_api.write_plazas(settings, rows)
        print(f"generate: wrote {len(rows)} plazas to {path}")
    if args.count:
        options = tolls.TollsOptions(count=args.count, seed=args.seed, start=args.start,
                                     span=dt.timedelta(minutes=args.span_minutes),
                                     customers=args.customers,
                                     faults=_faults(args))
        report = tolls.produce(settings, tolls.toll_records(options), total=args.count,
                               rate=args.rate)
        print(f"generate: sent {report.sent} records to {settings.topics.tolls_events} in "
              f"{report.seconds:.1f}s")
    return 0


def _generate_clicks(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake.generators import clicks, stream

    options = clicks.ClicksOptions(
        count=args.count, seed=args.seed, start=args.start,
        span=dt.timedelta(minutes=args.span_minutes), articles=args.articles,
        sessions=args.sessions, faults=_faults(args))
    topic = settings.topics.clicks_events
    report = stream.produce(settings, clicks.click_records(options), topic, total=args.count,
                            rate=args.rate)
    print(f"generate: sent {report.sent} records to {topic} in {report.seconds:.1f}s")
    return 0


def _customers(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import customers

    if args.action == "set-threshold":
        customers.set_threshold(settings, args.customer_id, args.amount)
        shown = customers.parse_threshold(args.amount)
        print(f"customers: {args.customer_id} monthly threshold is now "
              f"{shown if shown is not None else 'none (no alerts)'}")
    else:
        for customer_id, threshold in sorted(customers.thresholds(settings).items()):
            print(f"{customer_id}\t{threshold if threshold is not None else 'none'}")
    return 0


def _plazas(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import plazas

    if args.action == "add":
        plazas.add_plaza(settings, args.plaza_id, args.name)
        print(f"plazas: {args.plaza_id.strip()} is a known plaza (from the streaming job's next "
              f"micro-batch)")
        return 0
    rows = plazas.plaza_rows(settings)
    if rows is None:
        print("plazas: no plazas table: every plaza_id is accepted")
    for row in rows or []:
        print(f"{row['plaza_id']}\t{row['name'] or ''}")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import status

    report = status.status(settings)
    print(report.render())
    return 1 if report.attention else 0


def _land(settings: Settings, args: argparse.Namespace) -> int:
    from batch.omop.land import land

    result = land(settings, args.path, args.source)
    print(f"land: {result.files} files ({result.bytes / 1e6:.1f} MB) landed as "
          f"{result.landing_id} in {result.folder}")
    return 0


def _generate_mimic(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake.generators import mimic

    out = args.out or str(Path(settings.state.dir) / "mimic-synthetic")
    counts = mimic.generate(out, args.patients, args.seed)
    print(f"generate: {args.patients} synthetic MIMIC-III patients in {out}: "
          + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    return 0


def _speed(settings: Settings, args: argparse.Namespace) -> int:
    from speed import clicks_stream, tolls_stream

    job = {"tolls": tolls_stream, "clicks": clicks_stream}[args.domain]
    return job.main(["--until-idle"] if args.until_idle else [])


def _batch(settings: Settings, args: argparse.Namespace) -> int:
    if args.job == "omop":
        from batch import omop_etl

        return omop_etl.main(args.job_args)
    from batch import clicks_reports, tolls_reports

    return {"tolls-reports": tolls_reports, "clicks-reports": clicks_reports}[args.job].main([])


def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    from batch import maintain
    from lambdalake.spark import create_spark_session

    return maintain.run_with_options(create_spark_session(settings, "lambdalake-maintain"),
                                     settings, args)


def _batch_schedule(settings: Settings, args: argparse.Namespace) -> int:
    from batch import maintain, tolls_reports, views_job
    from batch.clicks_reports import CLICKS_REPORTS
    from batch.schedule import parse_interval, run_schedule
    from lambdalake.spark import create_spark_session

    every = parse_interval(args.every)
    maintain_every = (parse_interval(args.maintain_every, "--maintain-every")
                      if args.maintain_every else None)
    spark = create_spark_session(settings, "lambdalake-batch-schedule")
    print(f"batch: running {', '.join(args.jobs)} every {args.every}"
          + (f", maintenance every {args.maintain_every}" if maintain_every else "")
          + " (Ctrl-C or SIGTERM stops after the current run)", flush=True)
    jobs = {"tolls-reports": lambda: tolls_reports.run(spark, settings).summary(),
            "clicks-reports": lambda: views_job.run(CLICKS_REPORTS, spark, settings).summary()}
    scheduled = [(name, jobs[name], every) for name in args.jobs]
    if maintain_every:
        scheduled.append(("maintain", lambda: maintain.run(
            spark, settings, log=lambda line: print(line, flush=True)).summary(),
            maintain_every))
    log = run_schedule(scheduled, every, max_ticks=args.max_runs,
                       log=lambda line: print(line, flush=True))
    print(f"batch: schedule stopped: {log.succeeded} runs succeeded, {log.failed} failed")
    return 0


def _query(settings: Settings, args: argparse.Namespace) -> int:
    import duckdb

    from serving.engine import Serving
    from serving.output import FORMATS

    if args.sql is None:
        return _console(settings, args.format)
    serving = Serving(settings, copy_to_duckdb=False)
    try:
        result = serving.query(args.sql)
    except duckdb.Error as exc:
        raise LambdalakeError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        serving.close()
    print(FORMATS[args.format](result))
    return 0


def _console(settings: Settings, output: str) -> int:
    from serving import console
    from serving.engine import Serving
    from serving.output import FORMATS

    serving = Serving(settings, copy_to_duckdb=False)

    def execute(sql: str):  # noqa: ANN202 (a pyarrow Table)
        serving.refresh()
        return serving.query(sql)

    try:
        if sys.stdin.isatty():
            print(f"lambdalake query: the serving layer of {settings.lake.root}; statements "
                  "end with ';', .help for commands, Ctrl-D to leave")
            commands = console.prompt_statements(Path(settings.state.dir) / "query_history")
        else:
            commands = console.statements(sys.stdin)
        failed = console.run_console(execute, FORMATS[output], commands,
                                     lambda text: print(text, flush=True))
    finally:
        serving.close()
    return 2 if failed and not sys.stdin.isatty() else 0


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from batch.schedule import parse_interval, run_schedule
    from serving.engine import ServedDatabase, Serving, require_local_lake

    require_local_lake(settings)
    database = Path(args.database or settings.serving.database)
    every_text = args.every or settings.serving.refresh_interval
    every = parse_interval(every_text, "--every" if args.every else "serving.refresh_interval")
    serving = Serving(settings, copy_to_duckdb=False)
    served = ServedDatabase(serving, database)

    def update() -> str:
        report = served.update()
        return "" if report is None else report.summary()  # nothing moved: no line

    try:
        print(f"serve: {update()}", flush=True)  # a bad setting fails here, in one line
        if args.once:
            return 0
        print(f"serve: keeping {database} current for read-only DuckDB clients, looking for "
              f"new commits every {every_text} (Ctrl-C or SIGTERM stops)", flush=True)
        log = run_schedule([("refresh", update, every)], every, prefix="serve",
                           log=lambda line: print(line, flush=True),
                           on_failure=f"the last written {database.name} stays")
        print(f"serve: stopped after {served.writes} writes of {database}"
              + (f", {log.failed} failed refreshes" if log.failed else ""))
    finally:
        served.close()
        serving.close()
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from lambdalake import demo

    return demo.main(settings, events=args.events, seed=args.seed)


def _pyfiles(settings: Settings, args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parent.parent
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in ("lambdalake", "batch", "speed", "serving", "schemas"):
            for path in sorted((root / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(root))
    print(f"pyfiles: wrote {out} (pass it to spark-submit --py-files)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `lambdalake`."""
    from batch import maintain

    parser = argparse.ArgumentParser(prog="lambdalake", description=(
        "Lambda-architecture pipeline: Kafka -> Spark streaming + batch -> Delta -> DuckDB. "
        "Settings: lambdalake.toml and LAMBDALAKE_* variables (see `lambdalake config`)."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[Settings, argparse.Namespace], int],
                help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    command("setup", _setup, "fetch the pinned JVM artifacts once (Maven Central), then offline")
    command("config", _config, "show every setting, its environment variable and its value")
    p = command("kafka", _kafka, "start, stop or show the local single-node Kafka broker")
    p.add_argument("action", choices=["start", "stop", "status"])

    gen = sub.add_parser("generate", help="generate data").add_subparsers(
        dest="domain", required=True, metavar="DOMAIN")
    p = gen.add_parser("tolls", help="toll events to Kafka (and the customers table)")
    p.set_defaults(handler=_generate)
    _add_stream_options(p, "events", 0)
    p.add_argument("--customers", type=int, default=200, help="customer count (default 200)")
    p.add_argument("--write-customers", action="store_true",
                   help="also (over)write the customers table in the lake")
    p.add_argument("--write-plazas", action="store_true",
                   help="also (over)write the plazas table in the lake with the generator's "
                        "plazas (events at other plazas are then quarantined)")

    p = gen.add_parser("clicks", help="page views of articles to Kafka")
    p.set_defaults(handler=_generate_clicks)
    _add_stream_options(p, "page views", 1000)
    p.add_argument("--articles", type=int, default=200, help="article count (default 200)")
    p.add_argument("--sessions", type=int, default=1000, help="session count (default 1000)")

    p = gen.add_parser("mimic", help="small synthetic MIMIC-III-shaped CSV files")
    p.set_defaults(handler=_generate_mimic)
    p.add_argument("--patients", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="folder to write (default: <state dir>/mimic-synthetic)")

    p = sub.add_parser("customers", help="toll customers and thresholds").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    st = p.add_parser("set-threshold", help="set a customer's monthly spending threshold")
    st.set_defaults(handler=_customers)
    st.add_argument("customer_id")
    st.add_argument("amount", help="e.g. 150.00, or none to switch alerts off")
    p.add_parser("list", help="list customers and thresholds").set_defaults(
        handler=_customers)

    command("status", _status, "one screen for an operator: streaming job, last micro-batch, "
                               "Kafka lag, batch cut-over, alerts, gaps (exit 1: attention)")

    p = sub.add_parser("plazas", help="toll plazas (while the table exists, events at other "
                                      "plazas are quarantined)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    add = p.add_parser("add", help="add a plaza (or rename one)")
    add.set_defaults(handler=_plazas)
    add.add_argument("plaza_id")
    add.add_argument("--name", default=None, help="display name")
    p.add_parser("list", help="list the known plazas").set_defaults(handler=_plazas)

    p = sub.add_parser("land", help="land raw files in the landing zone").add_subparsers(
        dest="source", required=True, metavar="SOURCE")
    mimic = p.add_parser("mimic", help="copy a MIMIC-III CSV folder into the landing zone")
    mimic.set_defaults(handler=_land)
    mimic.add_argument("path", help="folder of MIMIC-III CSV files")
    vocab = p.add_parser("vocabulary", help="copy concept maps (mimic-omop) and/or Athena "
                                            "CONCEPT.csv, CONCEPT_RELATIONSHIP.csv into the "
                                            "landing zone")
    vocab.set_defaults(handler=_land)
    vocab.add_argument("path", help="folder of concept map / vocabulary CSV files")

    p = sub.add_parser("speed", help="the streaming job").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    run = p.add_parser("run", help="run a domain's streaming job (tolls by default)")
    run.set_defaults(handler=_speed)
    run.add_argument("--domain", choices=["tolls", "clicks"], default="tolls",
                     help="tolls (the default) or clicks")
    run.add_argument("--until-idle", action="store_true",
                     help="process what is in Kafka now, then exit")

    p = sub.add_parser("batch", help="batch jobs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    run = p.add_parser("run", help="run a batch job")
    run.set_defaults(handler=_batch)
    run.add_argument("job", choices=["tolls-reports", "clicks-reports", "omop"])
    run.add_argument("job_args", nargs=argparse.REMAINDER,
                     help="options of the job, e.g. omop --sql-only or omop --no-announce")
    schedule = p.add_parser("schedule", help="rerun batch jobs on an interval (e.g. --every 30m)")
    schedule.set_defaults(handler=_batch_schedule)
    schedule.add_argument("--every", default="30m", help="interval: 30m, 90s, 1h (default 30m)")
    schedule.add_argument("--jobs", nargs="+", default=["tolls-reports"],
                          choices=["tolls-reports", "clicks-reports"])
    schedule.add_argument("--max-runs", type=int, default=None,
                          help="stop after this many ticks (default: run until stopped)")
    schedule.add_argument("--maintain-every", default=None,
                          help="also run `lambdalake maintain` after the jobs, on the first "
                               "tick and then once per interval, e.g. 1d (default: never)")

    p = command("maintain", _maintain, "compact (OPTIMIZE) the tables the streaming job "
                                       "appends to, remove old files (VACUUM, keeping what "
                                       "published batch runs and readers need), checkpoint "
                                       "the Delta logs")
    maintain.add_arguments(p)

    p = command("query", _query, "run SQL on the serving layer (merged views and lake "
                                 "tables); with no SQL, an interactive prompt (or the "
                                 "statements piped in)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("sql", nargs="?", default=None)

    p = command("serve", _serve, "write the serving layer as a DuckDB database file of views "
                                 "(serving.database) that any DuckDB client opens read-only, "
                                 "and keep it up to date")
    p.add_argument("--database", default=None,
                   help="the file to write (default: serving.database)")
    p.add_argument("--every", default=None,
                   help="how often to look for new commits, e.g. 10s (default: "
                        "serving.refresh_interval)")
    p.add_argument("--once", action="store_true", help="write the file once and exit")

    p = command("demo", _demo, "run the whole tolls pipeline end to end and check it")
    p.add_argument("--events", type=int, default=20_000, help="events in the first wave")
    p.add_argument("--seed", type=int, default=42)

    p = command("pyfiles", _pyfiles, "zip the job packages for spark-submit --py-files")
    p.add_argument("output", nargs="?", default="dist/lambdalake-jobs.zip")
    return parser


def _java_error_line(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if name in ("Py4JJavaError", "AnalysisException", "StreamingQueryException",
                "IllegalArgumentException", "CapturedException", "Py4JNetworkError"):
        text = str(exc).strip().splitlines()
        return f"{name}: {text[0] if text else ''}"[:400]
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return args.handler(settings, args)
    except LambdalakeError as exc:
        print(f"lambdalake: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `lambdalake query ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("lambdalake: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        line = _java_error_line(exc)
        if line is None:
            raise
        print(f"lambdalake: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
