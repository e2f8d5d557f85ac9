"""`nexus` operator subcommands: token, topics, publish, tail, replay, schemas, templates, saga."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import sys
import uuid
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition

from gateway.auth import DEFAULT_SCOPES, TokenVerifier
from infra.cli.saga_audit import json_line, report_lines, summary_lines
from infra.config.settings import Settings
from projections.catalog import PROJECTIONS
from sagas.rendering import check_templates
from schemas.codec import AvroCodec, DecodeError, SchemaViolation
from schemas.compatibility import check_registry
from schemas.registry import UnknownSchema, default_registry
from schemas.tracked_batch import unpack
from streams.aggregate_history import TopicMissing, read_aggregate_history
from streams.bus import EventBus, OwnedByCommandSide
from streams.kafka.config import consumer_config
from streams.kafka.topics import LOGICAL_TOPICS, Topics


def token(args: argparse.Namespace, settings: Settings) -> int:
    try:
        # Both refusals are the gateway's: a secret under 32 bytes, a ttl past the max.
        verifier = TokenVerifier.from_settings(settings)
        print(verifier.issue(args.sub, args.scope or list(DEFAULT_SCOPES), args.ttl))
    except ValueError as exc:
        print(f"nexus token: {exc}", file=sys.stderr)
        return 2
    return 0


def token_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sub", required=True, help="the token's subject (who acts)")
    parser.add_argument("--scope", action="append", help="a scope; repeat for more (default: all)")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")


def topics(args: argparse.Namespace, settings: Settings) -> int:
    """One row per platform topic (streams.kafka.topics), missing ones included."""
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.cli"))
    try:
        print(f"{'TOPIC':<32} {'PARTITIONS':>10} {'OFFSETS':>10}")
        for name in Topics.from_settings(settings).names():
            meta = consumer.list_topics(name, timeout=10).topics[name]
            if meta.error is not None:
                print(f"{name:<32} {'missing':>10}")
                continue
            marks = [
                consumer.get_watermark_offsets(TopicPartition(name, p), 10) for p in meta.partitions
            ]
            print(f"{name:<32} {len(marks):>10} {sum(h - lo for lo, h in marks):>10}")
    finally:
        consumer.close()
    return 0


def publish(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        print(f"nexus publish: the data is not JSON: {exc}", file=sys.stderr)
        return 2

    async def send() -> None:
        bus = EventBus(settings)
        try:
            sent = await bus.publish(args.type, args.aggregate_id, data, actor=args.actor)
            print(
                json.dumps(
                    {"event_id": sent.event_id, "position": f"{sent.partition}-{sent.offset}"}
                )
            )
        finally:
            bus.close()

    try:
        asyncio.run(send())
    except UnknownSchema:
        print(f"nexus publish: no schema for event type {args.type!r}", file=sys.stderr)
        return 2
    except (SchemaViolation, OwnedByCommandSide) as exc:
        print(f"nexus publish: {exc}", file=sys.stderr)
        return 2
    return 0


def publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("type", help="event type with a schema under schemas/events/")
    parser.add_argument("aggregate_id")
    parser.add_argument("data", help="the event's data as JSON")
    parser.add_argument("--actor", default="cli")


def tail(args: argparse.Namespace, settings: Settings) -> int:
    """Every platform topic holds single-object Avro of schemas/, so one codec decodes all."""
    logical = Topics.from_settings(settings).by_logical_name()
    name = logical.get(args.topic, args.topic)
    codec = AvroCodec()
    consumer = Consumer(consumer_config(settings, f"{settings.topic_prefix}.tail.{uuid.uuid4()}"))
    try:
        meta = consumer.list_topics(name, timeout=10).topics[name]
        if meta.error is not None:  # assigning no partitions would wait forever, silent
            print(f"nexus tail: no topic {name} ({meta.error.str()})", file=sys.stderr)
            return 1
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(name, p, start) for p in meta.partitions])
        _print_messages(consumer, codec, args.max, args.idle_exit)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def _print_messages(
    consumer: Consumer, codec: AvroCodec, limit: int | None, idle_exit: float | None
) -> None:
    printed, idle = 0, 0.0
    while limit is None or printed < limit:
        message = consumer.poll(0.5)
        if message is None:
            idle += 0.5
            if idle_exit is not None and idle >= idle_exit:
                return
            continue
        idle = 0.0
        if message.error() is not None:
            continue
        lines = _lines(codec, message)
        for line in lines if limit is None else lines[: limit - printed]:
            print(json.dumps(line, default=_json_default), flush=True)
            printed += 1


def _lines(codec: AvroCodec, message: Message) -> list[dict[str, Any]]:
    """A line per record, or per event of a collector batch (with its place in the batch)."""
    where: dict[str, Any] = {"partition": message.partition(), "offset": message.offset()}
    try:
        payloads = unpack(codec, message.value())
    except DecodeError as err:
        return [{**where, "undecodable": err.reason, "detail": err.detail}]
    lines = []
    for item, payload in enumerate(payloads):
        at = where if len(payloads) == 1 else {**where, "item": item}
        try:
            schema, record = codec.decode(payload)
            lines.append({**at, "schema": schema.label, "record": record})
        except DecodeError as err:
            lines.append({**at, "undecodable": err.reason, "detail": err.detail})
    return lines


def tail_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help=f"{', '.join(LOGICAL_TOPICS)} or a full topic name")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--max", type=int, help="stop after this many messages")
    parser.add_argument("--idle-exit", type=float, help="stop after this many idle seconds")


def replay(args: argparse.Namespace, settings: Settings) -> int:
    # Imported when run: replay brings psycopg's pool and the rebuild machinery (~0.1 s).
    from projections.replay import replay as rebuild

    result = rebuild(settings, args.projection, progress=not args.quiet)
    for part in result.parts or (result,):
        line = {k: v for k, v in dataclasses.asdict(part).items() if k != "parts"}
        print(json.dumps(line | {"events_per_second": round(part.events_per_second)}))
    return 0


def replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "projection",
        choices=[*PROJECTIONS, "all"],
        metavar="PROJECTION",
        help=f"{', '.join(PROJECTIONS)} or all",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def schemas(args: argparse.Namespace, settings: Settings) -> int:
    registry = default_registry()
    if args.action == "list":
        for name in registry.names():
            latest = registry.latest(name)
            print(f"{latest.kind:<9} {name:<32} v{latest.version}  {latest.fingerprint.hex()}")
        return 0
    problems = check_registry(registry)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = sum(len(registry.versions(n)) for n in registry.names())
    print(f"{count} schema versions checked, {len(problems)} incompatibilities")
    return 1 if problems else 0


def schemas_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check", "list"])


def templates(args: argparse.Namespace, settings: Settings) -> int:
    problems = check_templates()
    for problem in problems:
        where = f"{problem.template}/{problem.channel}" if problem.channel else problem.template
        print(f"{where}: {problem.message}", file=sys.stderr)
    print(f"templates checked, {len(problems)} problems")
    return 1 if problems else 0


def templates_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"])


def saga(args: argparse.Namespace, settings: Settings) -> int:
    """Audit one notification saga from its topic; with --json the summary goes to stderr."""
    try:
        found = read_aggregate_history(settings, settings.topic("notifications"), args.id)
    except TopicMissing as exc:
        print(f"nexus saga audit: {exc}", file=sys.stderr)
        return 1
    where = f"{found.topic} partition {found.partition}"
    if not found.records:
        print(f"nexus saga audit: no events for saga {args.id} on {where}", file=sys.stderr)
        return 1
    if args.json:
        print("\n".join(json_line(record) for record in found.records))
        print("\n".join(summary_lines(found.records, found.undecodable)), file=sys.stderr)
    else:
        print("\n".join(report_lines(args.id, where, found.records, found.undecodable)))
    return 0


def saga_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["audit"])
    parser.add_argument("id", help="the notification id (the saga topic's key)")
    parser.add_argument("--json", action="store_true", help="one full record per line")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)
