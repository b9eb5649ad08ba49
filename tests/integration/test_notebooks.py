"""The analyst notebooks, executed end to end in a real Jupyter kernel (nbclient) against a lake
the test builds: no cell errors, and every plot cell shows a picture. The clinical notebook runs
in `tests/batch/test_omop_etl.py`, on the CDM that test's ETL publishes (an ETL run is the
slowest thing to build, and CI time is limited)."""

import collections
import datetime as dt
import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from batch import tolls_reports, views_job
from batch.clicks_reports import CLICKS_REPORTS
from lambdalake import customers, topics
from lambdalake.generators import clicks, stream, tolls
from speed import stream as stream_job
from speed import tolls_stream
from speed.clicks_stream import CLICKS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name, settings, monkeypatch, tmp_path):
    """Run notebook `name` on the test's lake (the kernel inherits the environment); return
    its executed cells."""
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("LAMBDALAKE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("LAMBDALAKE_LAKE_ROOT", settings.lake.root)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return [c for c in notebook.cells if c.cell_type == "code"]


def assert_plotted(cells, plots):
    """No cell failed, and each of the `plots` cells that call `serving.figures` shows a PNG."""
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    plotting = [c for c in cells if "figures." in c.source]
    assert len(plotting) == plots
    blank = [c.source for c in plotting
             if not any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert not blank


def text_of(cell):
    return "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "")
                   for o in cell.outputs)


def test_tolls_notebook_plots_every_report(kafka_broker, settings, spark, monkeypatch,
                                            tmp_path):
    topics.ensure_topics(settings, settings.topics.tolls_events)
    customers.write_customers(settings, tolls.customers(20, 9))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=50)
    options = tolls.TollsOptions(count=400, seed=9, start=start, customers=20,
                                 faults=stream.Faults(malformed_fraction=0.05,
                                                      duplicate_fraction=0.05))
    tolls.produce(settings, tolls.toll_records(options), progress=False)
    tolls_stream.run(spark, settings, until_idle=True)
    tolls_reports.run(spark, settings)

    cells = execute("tolls_reports", settings, monkeypatch, tmp_path)
    assert_plotted(cells, plots=5)
    freshness = cells[-1]
    assert freshness.source == "freshness"
    assert text_of(freshness).count("tolls_") == 4  # one row per merged report


def test_clicks_notebook_plots_every_report(kafka_broker, settings, spark, monkeypatch,
                                            tmp_path):
    topics.ensure_topics(settings, settings.topics.clicks_events)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=50)
    options = clicks.ClicksOptions(count=600, seed=9, start=start, span=dt.timedelta(minutes=50),
                                   articles=30, sessions=80,
                                   faults=stream.Faults(malformed_fraction=0.05,
                                                        duplicate_fraction=0.05))
    records = list(clicks.click_records(options))
    stream.produce(settings, records, settings.topics.clicks_events, progress=False)
    stream_job.run(CLICKS, spark, settings, until_idle=True)
    views_job.run(CLICKS_REPORTS, spark, settings)

    cells = execute("clicks_reports", settings, monkeypatch, tmp_path)
    assert_plotted(cells, plots=5)
    views = collections.Counter((r.event["event_time"].date(), r.event["article_id"])
                                for r in records if r.kind == "event")
    latest = max(day for day, _ in views)
    leader = max((n, article) for (day, article), n in views.items() if day == latest)[1]
    daily = next(c for c in cells if c.source == "daily.tail(10)")
    assert leader in text_of(daily)


def test_committed_notebooks_carry_their_plots():
    """They read well without running: each plot cell keeps the picture of a demo run."""
    for name in ("tolls_reports", "clicks_reports", "clinical_cohorts"):
        committed = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        plots = [c for c in committed["cells"]
                 if c["cell_type"] == "code" and "figures." in "".join(c["source"])]
        assert plots and all(any("image/png" in o.get("data", {}) for o in c["outputs"])
                             for c in plots), name
