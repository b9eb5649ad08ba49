"""Notebooks hold no logic, but their code must run against a real lake."""

import ast
import datetime as dt
import json
from pathlib import Path

from lambdalake import topics
from lambdalake.generators import tolls
from speed import tolls_stream

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_tolls_notebook_runs(kafka_broker, settings, spark, monkeypatch, tmp_path):
    topics.ensure_topics(settings, settings.topics.tolls_events)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)
    tolls.produce(settings, tolls.toll_records(tolls.TollsOptions(count=50, seed=9, start=start)),
                  progress=False)
    tolls_stream.run(spark, settings, until_idle=True)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("LAMBDALAKE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("LAMBDALAKE_LAKE_ROOT", settings.lake.root)
    notebook = json.loads((NOTEBOOKS / "tolls_reports.ipynb").read_text())
    namespace: dict = {}
    results = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            tree = ast.parse("".join(cell["source"]))
            last = tree.body.pop() if isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, "cell", "exec"), namespace)  # noqa: S102
            if last is not None:  # the value a notebook would display
                results.append(eval(compile(ast.Expression(last.value), "cell", "eval"),
                                    namespace))  # noqa: S307
    frames = [r for r in results if r is not None]
    assert len(frames) == 4
    assert frames[1]["vehicle_count"].sum() == 50
