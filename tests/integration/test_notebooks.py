"""The analyst notebooks, executed end to end in a real Jupyter kernel (nbclient) against a lake
the test builds: no cell errors, and every plot cell shows a picture. The clinical notebook runs
in `tests/batch/test_omop_etl.py`, on the CDM that test's ETL publishes (an ETL run is the
slowest thing to build, and CI time is limited)."""

import datetime as dt
import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from batch import tolls_reports
from lambdalake import customers, topics
from lambdalake.generators import stream, tolls
from speed import tolls_stream

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


def test_committed_notebooks_carry_their_plots():
    """They read well without running: each plot cell keeps the picture of a demo run."""
    for name in ("tolls_reports", "clinical_cohorts"):
        committed = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
        plots = [c for c in committed["cells"]
                 if c["cell_type"] == "code" and "figures." in "".join(c["source"])]
        assert plots and all(any("image/png" in o.get("data", {}) for o in c["outputs"])
                             for c in plots), name
