import pytest

from lambdalake.retention import Gap, describe, find_gaps, parse_offsets


def test_offsets_are_read_from_the_third_line_of_a_checkpoint_file():
    text = 'v1\n{"batchWatermarkMs":0}\n{"tolls.events":{"1":250,"0":300}}\n'
    assert parse_offsets(text) == {"tolls.events": {0: 300, 1: 250}}
    with pytest.raises(ValueError):
        parse_offsets("v1\n")


def test_a_gap_runs_from_the_start_to_the_earliest_offset_kept():
    # partition 0 lost 100-149; partition 1 was read from where it was to start
    assert find_gaps("t", {0: 100, 1: 80}, {0: 150, 1: 80}) == [Gap("t", 0, 100, 150)]
    assert describe(find_gaps("t", {0: 100}, {0: 150})) == "t partition 0: offsets 100-149 " \
                                                           "(50 records)"


def test_what_a_micro_batch_read_bounds_the_gap_and_no_loss_is_no_gap():
    # Kafka now keeps from 170, but the micro-batch read from 150 (deleted later)
    assert find_gaps("t", {0: 100}, {0: 170}, first_read={0: 150}) == [Gap("t", 0, 100, 150)]
    assert find_gaps("t", {0: 100}, {0: 90}, first_read={0: 100}) == []
    assert find_gaps("t", {0: 100}, {}) == []  # a partition Kafka no longer lists
