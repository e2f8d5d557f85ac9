"""`nexus analytics rejected|resubmit`: the analytics items the tracking plan refused.

`rejected` prints them as JSON lines, reading every partition of analytics-rejected without a
consumer group. `resubmit` re-checks them against the current plan (fixed since, say) and
ingests those that pass; its consumer group `<prefix>.analytics-resubmit` commits after
Kafka acknowledged them, so a second run starts where the first stopped. Items that still
fail stay where they are and are not written again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from infra.config.settings import Settings
from schemas.codec import AvroCodec, DecodeError
from schemas.tracking_plan import load_plan
from streams.ingest import Ingestor
from streams.kafka.async_producer import AsyncProducer
from streams.kafka.config import consumer_config, producer_config
from streams.kafka.reading import read_to_end

CHUNK = 500  # rejected items re-checked and published together


@dataclass
class ResubmitCounts:
    read: int = 0
    resubmitted: int = 0
    still_rejected: int = 0
    undecodable: int = 0


def analytics(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "rejected":
        return print_rejected(settings, args.max)
    counts = asyncio.run(resubmit(settings, args.max))
    if counts is None:
        return 1
    print(json.dumps(asdict(counts)))
    return 0


def analytics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["rejected", "resubmit"])
    parser.add_argument("--max", type=int, help="stop after this many rejected items")


def print_rejected(settings: Settings, limit: int | None) -> int:
    topic, codec = settings.topic("analytics-rejected"), AvroCodec()
    reader = f"{settings.topic_prefix}.analytics-rejected-reader.{uuid.uuid4().hex}"
    consumer = Consumer(consumer_config(settings, reader))  # assigns only; never commits
    printed = 0
    try:
        partitions = _partitions(consumer, topic)
        if partitions is None:
            return 1
        for partition in partitions:
            for message in read_to_end(consumer, topic, partition):
                if limit is not None and printed >= limit:
                    return 0
                print(json.dumps(rejected_line(codec, message)), flush=True)
                printed += 1
    finally:
        consumer.close()
    return 0


def rejected_line(codec: AvroCodec, message: Message) -> dict[str, Any]:
    where = {"partition": message.partition(), "offset": message.offset()}
    try:
        _, record = codec.decode(message.value())
    except DecodeError as err:
        return {**where, "undecodable": err.reason, "detail": err.detail}
    return {
        "rejected_at": record["rejected_at"].isoformat(),
        "source": record["source"],
        "index": record["index"],
        "errors": record["errors"],
        "payload": record["payload"],
        **where,
    }


async def resubmit(settings: Settings, limit: int | None) -> ResubmitCounts | None:
    topic, codec = settings.topic("analytics-rejected"), AvroCodec()
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.analytics-resubmit"))
    producer = AsyncProducer(producer_config(settings))
    ingestor = Ingestor(settings, producer, codec, load_plan(settings.analytics_file))
    counts = ResubmitCounts()
    try:
        partitions = _partitions(consumer, topic)
        if partitions is None:
            return None
        for partition in partitions:
            await _resubmit_partition(consumer, ingestor, topic, partition, limit, counts)
    finally:
        consumer.close()
        producer.close()
    return counts


async def _resubmit_partition(
    consumer: Consumer,
    ingestor: Ingestor,
    topic: str,
    partition: int,
    limit: int | None,
    counts: ResubmitCounts,
) -> None:
    """From the group's committed offset to the end the partition had when this started."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 30)
    [committed] = consumer.committed([TopicPartition(topic, partition)], 30)
    position = max(committed.offset, low)  # no commit yet: a negative sentinel
    consumer.assign([TopicPartition(topic, partition, position)])
    while position < high and (limit is None or counts.read < limit):
        wanted = CHUNK if limit is None else min(CHUNK, limit - counts.read)
        messages = [m for m in consumer.consume(wanted, 1.0) if m.error() is None]
        messages = [m for m in messages if m.offset() < high]
        if messages:
            await _resubmit_chunk(ingestor, messages, counts)
            last = TopicPartition(topic, partition, messages[-1].offset() + 1)
            consumer.commit(offsets=[last], asynchronous=False)
        position = max(consumer.position([TopicPartition(topic, partition)])[0].offset, position)


async def _resubmit_chunk(
    ingestor: Ingestor, messages: list[Message], counts: ResubmitCounts
) -> None:
    records = []
    for message in messages:
        try:
            records.append(ingestor.codec.decode(message.value())[1])
        except DecodeError:
            counts.undecodable += 1
    result = await ingestor.resubmit(records)  # raises LogUnavailable: nothing is committed
    counts.read += len(messages)
    counts.resubmitted += result.resubmitted
    counts.still_rejected += result.still_rejected


def _partitions(consumer: Consumer, topic: str) -> list[int] | None:
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    if meta.error is not None:
        print(f"nexus analytics: no topic {topic} ({meta.error.str()})", file=sys.stderr)
        return None
    return sorted(meta.partitions)
