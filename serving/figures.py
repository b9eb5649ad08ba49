"""Plots of the analysts' reports (`serving.reports`), one function per figure.

Each takes the report's DataFrame and returns a matplotlib `Figure` (a notebook displays it);
an empty report gives a figure that says so rather than an error. matplotlib is an optional
dependency (`pip install 'lambdalake[notebooks]'`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_WIDE = (10, 4)


def _figure(size: tuple[float, float] = _WIDE, columns: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _empty(axis, title: str) -> None:  # noqa: ANN001 (a matplotlib Axes)
    axis.set_title(title)
    axis.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()


def _panel(report: pd.DataFrame, title: str,
           size: tuple[float, float] = _WIDE) -> tuple[Figure, Any]:
    """A one-panel figure titled `title`, and its axes; None for the axes when the report is
    empty (the figure then says so)."""
    figure, (axis,) = _figure(size)
    axis.set_title(title)
    if report.empty:
        _empty(axis, title)
        return figure, None
    return figure, axis


def _lines(report: pd.DataFrame, title: str, key: str, at: str, value: str, top: int,
           xlabel: str, ylabel: str) -> Figure:
    """One line of `value` over `at` per `key`, for the `top` keys by total `value` (0 where a
    key has no row at a time another has)."""
    figure, axis = _panel(report, title)
    if axis is None:
        return figure
    leaders = report.groupby(key)[value].sum().nlargest(top).index
    wide = (report[report[key].isin(leaders)]
            .pivot_table(index=at, columns=key, values=value, aggfunc="sum")
            .fillna(0).astype(float))
    for name in wide.columns:
        axis.plot(wide.index, wide[name], marker=".", label=name)
    axis.set(xlabel=xlabel, ylabel=ylabel)
    axis.legend(ncols=2, fontsize="small")
    figure.autofmt_xdate()
    return figure


def plaza_revenue(report: pd.DataFrame, top: int = 6) -> Figure:
    """Revenue per 30 minutes of the `top` plazas by revenue, one line each."""
    return _lines(report, f"Revenue per 30 minutes, top {top} plazas", "plaza_id",
                  "bucket_start", "revenue", top, "30-minute bucket (UTC)", "revenue (USD)")


def _ranked_bars(report: pd.DataFrame, title: str) -> Figure:
    """Horizontal bars of the articles' views, the first ranked on top, each labelled with its
    distinct sessions."""
    figure, axis = _panel(report, title, (10, max(2.5, 0.4 * len(report) + 1)))
    if axis is None:
        return figure
    ordered = report.iloc[::-1]
    bars = axis.barh(ordered["article_id"].astype(str), ordered["view_count"],
                     color="tab:purple")
    axis.bar_label(bars, labels=[f"{n} sessions" for n in ordered["session_count"]],
                   fontsize="small", padding=3)
    axis.set(xlabel="page views")
    axis.margins(x=0.15)
    return figure


def trending_articles(report: pd.DataFrame) -> Figure:
    """Horizontal bars: the trending articles' views over the last 10 minutes, with their
    distinct sessions."""
    title = "Trending articles, the last 10 minutes"
    if not report.empty:
        start, end = report["window_start"].iloc[0], report["window_end"].iloc[0]
        title += f" ({start:%H:%M}-{end:%H:%M} UTC)"
    return _ranked_bars(report, title)


def article_minutes(report: pd.DataFrame, top: int = 6) -> Figure:
    """Page views per minute of the `top` articles by views, one line each."""
    return _lines(report, f"Page views per minute, top {top} articles", "article_id",
                  "view_minute", "view_count", top, "minute (UTC)", "page views")


def daily_popularity(report: pd.DataFrame) -> Figure:
    """Horizontal bars: the most viewed articles of the latest day in the report."""
    latest = report[report["view_date"] == report["view_date"].max()]
    title = "Most viewed articles of the day"
    if not latest.empty:
        title += f" ({latest['view_date'].iloc[0]:%Y-%m-%d}, UTC)"
    return _ranked_bars(latest, title)


def spend_against_threshold(report: pd.DataFrame) -> Figure:
    """Histogram of this month's spend as a share of each customer's threshold (1 = at it)."""
    figure, axis = _panel(report, "This month's spend against each customer's threshold")
    if axis is None:
        return figure
    shares = report["share_of_threshold"].astype(float)
    axis.hist(shares, bins=30, color="tab:blue", alpha=0.8)
    axis.axvline(1.0, color="tab:red", linestyle="--", label="threshold")
    over = int(report["is_over_threshold"].sum())
    axis.set_title(f"{axis.get_title()} ({over} of {len(report)} over)")
    axis.set(xlabel="spend / monthly threshold", ylabel="customers")
    axis.legend()
    return figure


def alerts_over_time(report: pd.DataFrame) -> Figure:
    """Alerts per 10 minutes of the crossing transaction's event time."""
    figure, axis = _panel(report, "Threshold alerts per 10 minutes "
                                  "(event time of the crossing transaction)")
    if axis is None:
        return figure
    axis.bar(report["bucket_start"], report["alerts"], width=pd.Timedelta(minutes=9),
             align="edge", color="tab:orange")
    axis.set(xlabel="event time (UTC)", ylabel="alerts")
    figure.autofmt_xdate()
    return figure


def quarantine_reasons(report: pd.DataFrame) -> Figure:
    """Horizontal bars: quarantined records per kind of reason."""
    figure, axis = _panel(report, "Quarantined records by reason",
                          (10, max(2.5, 0.45 * len(report) + 1)))
    if axis is None:
        return figure
    ordered = report.sort_values("records")
    axis.barh(ordered["reason"], ordered["records"], color="tab:gray")
    axis.set(xlabel="records")
    return figure


def pipeline_health(batches: pd.DataFrame, freshness: pd.DataFrame | None = None) -> Figure:
    """Three panels: records and duration of each micro-batch; how long events waited in
    Kafka per micro-batch; how old each report's batch and speed parts are (the first two
    alone without `freshness`)."""
    figure, panels = _figure((14, 4) if freshness is not None else (10, 4),
                             columns=3 if freshness is not None else 2)
    records, waits = panels[:2]
    if batches.empty:
        _empty(records, "Records per micro-batch")
        _empty(waits, "Time in Kafka before landing")
    else:
        ids = batches["ingest_batch_id"]
        records.bar(ids, batches["landed_count"], label="landed", color="tab:green")
        records.bar(ids, batches["quarantined_count"] + batches["duplicate_count"],
                    bottom=batches["landed_count"], label="quarantined + duplicates",
                    color="tab:red")
        records.set(title="Records per micro-batch", xlabel="micro-batch", ylabel="records")
        duration = records.twinx()
        duration.plot(ids, batches["processing_seconds"].astype(float), color="black",
                      marker=".")
        duration.set_ylabel("duration, seconds (line)")
        records.legend(loc="upper left", fontsize="small")
        waits.plot(ids, batches["kafka_wait_p50_seconds"], marker=".", label="p50")
        waits.plot(ids, batches["kafka_wait_max_seconds"], marker=".", label="max")
        waits.set(title="Time in Kafka before landing", xlabel="micro-batch", ylabel="seconds")
        waits.legend(fontsize="small")
        for axis in (records, waits):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if freshness is None:
        return figure
    ages = panels[2]
    if freshness.empty:
        _empty(ages, "Age of each report's parts")
    else:
        positions = range(len(freshness))
        ages.barh([p - 0.2 for p in positions], freshness["batch_age_seconds"].astype(float),
                  height=0.4, label="batch part (since its run was published)")
        ages.barh([p + 0.2 for p in positions], freshness["speed_age_seconds"].astype(float),
                  height=0.4, label="speed part (since the last micro-batch)")
        ages.set_yticks(list(positions), freshness["report"], fontsize="small")
        ages.set(title="Age of each report's parts", xlabel="seconds")
        ages.legend(fontsize="small")
    return figure


def persons_by_gender_and_age(report: pd.DataFrame) -> Figure:
    """Grouped bars: persons per age group at first visit, one bar per gender."""
    figure, axis = _panel(report, "Persons by gender and age at first visit")
    if axis is None:
        return figure
    wide = report.pivot_table(index="age_group", columns="gender", values="persons",
                              aggfunc="sum", fill_value=0)
    width = 0.8 / len(wide.columns)
    for n, gender in enumerate(wide.columns):
        axis.bar([i + n * width for i in range(len(wide))], wide[gender], width=width,
                 label=gender)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(wide))], wide.index)
    axis.set(xlabel="age group", ylabel="persons")
    axis.legend(title="gender")
    return figure


def visits_per_month(report: pd.DataFrame) -> Figure:
    """Line: visits started per month."""
    figure, axis = _panel(report, "Visits per month (MIMIC-III dates are shifted)")
    if axis is None:
        return figure
    axis.plot(report["month"], report["visits"], marker=".")
    axis.set(xlabel="month", ylabel="visits")
    figure.autofmt_xdate()
    return figure


def top_concepts(report: pd.DataFrame, what: str) -> Figure:
    """Horizontal bars: the most frequent concepts (or source values) of `what`."""
    figure, axis = _panel(report, f"Most frequent {what}", (10, max(2.5, 0.35 * len(report) + 1)))
    if axis is None:
        return figure
    ordered = report.iloc[::-1]
    axis.barh([label[:60] for label in ordered["label"]], ordered["events"],
              color="tab:purple")
    axis.set(xlabel="records")
    axis.tick_params(axis="y", labelsize="small")
    return figure


def cohort(report: pd.DataFrame, name: str) -> Figure:
    """Bars per gender: the cohort's persons and its deaths, with the mean age at first visit."""
    figure, axis = _panel(report, f"Cohort: {name}", (7, 4))
    if axis is None:
        return figure
    axis.bar(report["gender"], report["persons"], label="persons", color="tab:blue")
    axis.bar(report["gender"], report["died"], label="died", color="tab:red", width=0.5)
    for x, (persons, age) in enumerate(zip(report["persons"],
                                           report["mean_age_at_first_visit"], strict=True)):
        axis.annotate(f"mean age {float(age):.0f}", (x, persons), ha="center", va="bottom")
    axis.set(xlabel="gender", ylabel="persons")
    axis.legend()
    return figure
