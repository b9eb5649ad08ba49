import duckdb
import pytest

import schemas


@pytest.mark.parametrize("name", schemas.available())
def test_every_spec_derives_consistent_spark_arrow_and_duckdb_schemas(name):
    spec = schemas.load(name)
    spark_schema = schemas.spark_schema(name)
    arrow_schema = schemas.arrow_schema(name)
    assert spark_schema.fieldNames() == arrow_schema.names == spec.column_names
    assert set(spec.primary_key) <= set(spec.column_names)
    for column, field in zip(spec.columns, spark_schema.fields, strict=True):
        assert field.nullable is not column.required
    con = duckdb.connect()
    con.execute(schemas.duckdb_ddl(name, "t"))
    described = con.execute("describe t").fetchall()
    assert [row[0] for row in described] == spec.column_names
    assert [row[2] == "NO" for row in described] == [c.required for c in spec.columns]


def test_landing_zone_keeps_every_event_field_and_its_kafka_coordinates():
    landing = schemas.load("tolls_landing")
    event = schemas.load("tolls_event")
    assert set(event.column_names) < set(landing.column_names)
    assert {"kafka_topic", "kafka_partition", "kafka_offset", "ingested_at"} <= set(
        landing.column_names)


def test_money_is_decimal_everywhere():
    for name in schemas.available():
        for column in schemas.load(name).columns:
            if column.name in ("amount", "spend", "revenue", "monthly_threshold"):
                assert column.type.startswith("decimal("), f"{name}.{column.name}"


def test_unknown_logical_type_is_an_error():
    with pytest.raises(ValueError, match="unknown logical type"):
        schemas.spark_type("float")
