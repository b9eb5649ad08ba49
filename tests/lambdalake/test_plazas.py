import pytest

from lambdalake import lake, plazas
from lambdalake.errors import LambdalakeError


def test_no_plazas_table_means_every_plaza_is_accepted(settings):
    assert lake.table_version(settings, plazas.TABLE) is None
    assert lake.column_values(settings, plazas.TABLE, "plaza_id") is None
    assert plazas.plaza_rows(settings) is None


def test_plazas_are_written_added_and_renamed(settings):
    plazas.write_plazas(settings, [{"plaza_id": "P01", "name": "One"},
                                   {"plaza_id": "P02", "name": None}])
    first = lake.table_version(settings, plazas.TABLE)
    plazas.add_plaza(settings, " P03 ", "Three")
    plazas.add_plaza(settings, "P01", "Exit 1")
    assert lake.table_version(settings, plazas.TABLE) == first + 2  # the stream sees each change
    known = lake.column_values(settings, plazas.TABLE, "plaza_id")
    assert known == frozenset({"P01", "P02", "P03"})
    assert plazas.plaza_rows(settings) == [{"plaza_id": "P01", "name": "Exit 1"},
                                           {"plaza_id": "P02", "name": None},
                                           {"plaza_id": "P03", "name": "Three"}]


def test_the_first_plaza_added_creates_the_table(settings):
    plazas.add_plaza(settings, "P07")
    assert lake.column_values(settings, plazas.TABLE, "plaza_id") == frozenset({"P07"})


def test_a_blank_plaza_id_is_a_one_line_error(settings):
    with pytest.raises(LambdalakeError, match="a plaza id is needed"):
        plazas.add_plaza(settings, "  ")
