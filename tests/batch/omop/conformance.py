"""Conformance of published CDM tables, checked in DuckDB independently of the ETL's Great
Expectations suites (same rules, other engine)."""

import schemas
from batch import omop_etl
from batch.omop import checks


def violations(serving, has_vocabulary: bool) -> dict[str, int]:
    """Rule -> rows breaking it, over every published CDM table (empty when all conform)."""
    produced = set(omop_etl.TABLES) - (set() if has_vocabulary else {"concept"})
    found = {}

    def count(name, sql):
        found[name] = serving.con.execute(sql).fetchone()[0]

    for table in omop_etl.TABLES:
        spec = schemas.load(f"omop_{table}")
        t = f"omop.{table}"
        for c in spec.columns:
            if c.required:
                count(f"{table}: {c.name} is null",
                      f'select count(*) from {t} where "{c.name}" is null')
        if len(spec.primary_key) == 1:
            key = spec.primary_key[0]
            count(f"{table}: {key} repeats", f"select count(*) - count(distinct {key}) from {t}")
        for column, parent in checks.references(spec, produced).items():
            key = schemas.load(f"omop_{parent}").primary_key[0]
            count(f"{table}: {column} does not resolve in {parent}",
                  f"select count(*) from {t} c where c.{column} is not null and not exists "
                  f"(select 1 from omop.{parent} p where p.{key} = c.{column})")
        for start, end in checks.date_pairs(spec):
            count(f"{table}: {start} after {end}",
                  f"select count(*) from {t} where {start} > {end}")
        dates = checks.event_dates(spec)
        if dates:
            first, last = dates
            count(f"{table}: outside the observation period",
                  f"select count(*) from {t} e "
                  "left join omop.observation_period o using (person_id) "
                  f"where o.person_id is null or e.{first} < o.observation_period_start_date "
                  f"or coalesce(e.{last or first}, e.{first}) > o.observation_period_end_date")
    return {name: n for name, n in found.items() if n}
