import pytest

import schemas
from lambdalake import domains


def test_a_domains_tables_and_query_are_named_after_it():
    clicks = domains.CLICKS
    assert (clicks.query_name, clicks.landing, clicks.speed_rows, clicks.progress, clicks.gaps) == (
        "clicks_stream", "clicks_landing", "clicks_speed_rows", "clicks_stream_progress",
        "clicks_kafka_gaps")
    assert clicks.stream_tables == ("clicks_landing", "clicks_quarantine", "clicks_speed_rows",
                                    "clicks_kafka_gaps")


@pytest.mark.parametrize("domain", domains.DOMAINS, ids=lambda d: d.name)
def test_each_batch_views_speed_part_is_one_of_its_domains_speed_views(domain):
    for view in domain.batch_views:
        part = schemas.load(view).speed_part
        assert part is not None, view
        assert part.source in domain.speed_views, view
    for table in domain.stream_tables:  # every table it names has a spec
        assert schemas.load(table).name == table


def test_a_job_naming_other_views_than_its_domain_is_refused():
    domains.same_names("clicks views", ("a", "b"), ("a", "b"))
    with pytest.raises(ValueError, match="clicks views: a differ from the domain's a, b"):
        domains.same_names("clicks views", ("a",), ("a", "b"))
