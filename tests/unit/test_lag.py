"""Consumer lag arithmetic (shared/platform/lag.py): log end − committed, per topic, never negative."""

from aiokafka import TopicPartition

from shared.platform.lag import lag_by_topic


def test_lag_sums_partitions_and_counts_uncommitted_from_log_start():
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    end = {a0: 100, a1: 50, b0: 10}
    start = {a0: 0, a1: 20, b0: 0}
    committed = {a0: 90, a1: None, b0: 10}
    assert lag_by_topic(end, start, committed) == {"a": 10 + 30, "b": 0}


def test_lag_is_never_negative():
    # Tansu's memory build can report a high watermark below a committed offset.
    tp = TopicPartition("a", 0)
    assert lag_by_topic({tp: 991}, {tp: 0}, {tp: 1000}) == {"a": 0}
