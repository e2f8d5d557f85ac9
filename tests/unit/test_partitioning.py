"""murmur2 and the key partitioner against the vectors of Kafka's own Java tests."""

from __future__ import annotations

import pytest

from streams.kafka.partitioning import murmur2, partition_for, to_positive

# org.apache.kafka.common.utils.UtilsTest#testMurmur2, plus the 1..5 byte keys that
# Akka checks against the same Java method (every tail length 0..3 is covered).
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"1", -1993445489),
    (b"12", 126087238),
    (b"123", -267702483),
    (b"1234", -1614185708),
    (b"12345", -1188365604),
]


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2, ids=lambda v: repr(v))
def test_murmur2_matches_kafkas_java_utils(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


# Computed with kafka-clients 4.1.1: `Utils.murmur2(key)` and `toPositive(hash) % 6`.
# They cover bytes above 0x7f (Java bytes are signed; murmur2 masks them) and the empty key.
JAVA_KAFKA_CLIENTS = [
    ("ünïcødé-notification-✓".encode(), -816385875, 5),
    (bytes([0xFF, 0x80, 0x7F, 0x00, 0xC3]), 1119845942, 2),
    (b"", 275646681, 3),
    (b"0b7e4f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", 1857671347, 1),
]


@pytest.mark.parametrize(("key", "expected", "partition"), JAVA_KAFKA_CLIENTS)
def test_murmur2_and_partition_match_kafka_clients_for_any_bytes(
    key: bytes, expected: int, partition: int
) -> None:
    assert murmur2(key) == expected
    assert partition_for(key, 6) == partition


def test_to_positive_clears_the_sign_bit_like_java() -> None:
    assert to_positive(-(2**31)) == 0  # where Math.abs would stay negative
    assert to_positive(-1) == 2**31 - 1
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF == 1173551340


def test_partition_for_is_the_positive_hash_modulo_the_partition_count() -> None:
    assert partition_for(b"21", 6) == 1173551340 % 6 == 0
    assert partition_for(b"abc", 7) == 479470107 % 7 == 4
    assert [partition_for(b"foobar", 1)] == [0]


def test_partition_for_refuses_a_topic_without_partitions() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"k", 0)
