"""Generator of page-view events (the JSON wire format of `schemas/clicks_event.json`).

`click_records` is pure and deterministic for its options; `generators.stream.produce` writes the
records to Kafka.
Article popularity is skewed (a few articles get most views, as on a news site) and drifts over
the span, so the trending articles of the last minutes differ from the day's most read. Readers
browse in sessions; about a third are signed in. The stream and its faults (late, out of order,
duplicate, malformed) are `generators.stream`'s, shared with the tolls domain.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from lambdalake.generators import stream

REFERRERS = (None, "news.google.com", "www.google.com", "t.co", "www.facebook.com",
             "www.reddit.com", "newsletter")
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_WEIGHTS = (35, 55, 10)


@dataclass(frozen=True)
class ClicksOptions(stream.StreamOptions):
    """What to generate: the stream's options, how many articles and sessions."""

    articles: int = 200
    sessions: int = 1000


def article_ids(count: int) -> list[str]:
    """The article ids the generator uses."""
    return [f"A{n:05d}" for n in range(1, count + 1)]


def _article(rng: random.Random, at_fraction: float, n_articles: int) -> str:
    """A Zipf-like pick whose favourites drift with the time through the span (0..1)."""
    rank = min(int(rng.paretovariate(1.2)), n_articles) - 1
    shift = int(at_fraction * n_articles / 4)  # a new set of favourites every quarter span
    return f"A{(rank + shift) % n_articles + 1:05d}"


def _event(rng: random.Random, at: dt.datetime, options: ClicksOptions,
           start: dt.datetime) -> dict:
    session = rng.randrange(options.sessions)
    fraction = min(max((at - start) / options.span, 0.0), 1.0) if options.span else 0.0
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "session_id": f"S{session:06d}",
        "user_id": f"U{session // 3:06d}" if session % 3 == 0 else None,
        "article_id": _article(rng, fraction, options.articles),
        "referrer": rng.choice(REFERRERS),
        "device": rng.choices(DEVICES, weights=DEVICE_WEIGHTS)[0],
        "event_time": at,
    }


def encode_event(event: dict) -> bytes:
    """The JSON wire bytes of a page view."""
    wire = {**event, "event_time": event["event_time"].isoformat(timespec="milliseconds")}
    return json.dumps(wire, separators=(",", ":")).encode()


# how a malformed page view is broken, besides truncated or not UTF-8
_BREAKS = (lambda e: e.pop("article_id"), lambda e: e.update(event_time="last tuesday"),
           lambda e: e.update(session_id="S" * 100),  # over its maximum length
           lambda e: e.update(scroll_depth=0.5))  # a field the spec does not have


def _malformed(rng: random.Random, event: dict) -> bytes:
    return stream.malformed(rng, encode_event(event), 5, _BREAKS)


def click_records(options: ClicksOptions) -> Iterator[stream.Record]:
    """Generate the records, deterministic for the options."""
    start = options.start or stream.default_start(options.span)
    domain = stream.Domain(event=lambda rng, at: _event(rng, at, options, start),
                           encode=lambda _rng, event: encode_event(event),
                           malform=_malformed, key=lambda event: event["event_id"].encode())
    return stream.records(domain, options.count, options.seed, start, options.span,
                          options.faults)

