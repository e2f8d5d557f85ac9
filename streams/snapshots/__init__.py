"""Command-side snapshots: a partition's aggregate states, so that a takeover is bounded.

Taking over commands partition p needs the state of every aggregate on events partition p.
Without a snapshot that is a fold of the whole partition, so takeover time grows with
history. With one, it is a read of the latest snapshot plus a fold of the events after it.

Where: `<prefix>.snapshots`, compacted, co-partitioned with the events; snapshots of events
partition p live on its partition p, written by the one transactional producer that also
writes events partition p (streams/partition_writer.py).

Correctness:
- A snapshot is produced inside a command batch's transaction, after the batch's events are
  delivered. It holds exactly the states after every event before its `covered_offset`
  (the offset after the batch's last event), and it commits or vanishes with those events.
  Takeovers read it read_committed, so an aborted snapshot is never seen; they read after
  init_transactions, which completes the previous owner's last transaction (its commit
  markers are written after commit_transaction returns), so its last snapshot is seen.
- A head carries the deciders' version (a fingerprint of the `aggregates` package), the
  events topic's Kafka id and the events partition. A head that differs in any of them,
  or whose chunks do not add up or decode, is ignored with a `snapshot_ignored` log line,
  and the takeover folds every event as before.
- Snapshots are a cache. Deleting the topic (or any of it) costs one full rebuild, never a
  wrong state; `nexus` replays read the events, never this topic.

Cost:
- Writing: every `every_events` events or `every_s` seconds (NEXUS_SNAPSHOT_EVERY_EVENTS,
  NEXUS_SNAPSHOT_EVERY_S), whichever comes first, and only if something changed. A snapshot
  is a delta of the aggregates changed since the last one; once a generation holds twice
  as many entries as there are aggregates, the next snapshot is a new base of all of them.
  So writing costs about one state encode per changed aggregate per snapshot.
- Reading: the latest head is found from the end of the partition; then its generation's
  chunks (at most about two states per aggregate) and at most `every_events` events (or
  `every_s` seconds' worth) are folded. Takeover is bounded by the number of live
  aggregates, not by history.
- Size: a chunk holds at most `chunk_bytes` of states (512 KiB by default, well under the
  topic's max.message.bytes); a single state too large for a record skips the snapshot.

Records (Avro, schemas/system/aggregate.snapshot*, so `nexus tail snapshots` shows them):
the chunk keyed `chunk/<sequence>` and the head keyed `head`. Compaction keeps the latest
of each, so the topic holds about one generation per partition. The states inside are JSON
(aggregates/state_codec.py): they are derived data with no schema of their own, and JSON of
`codec.to_data` is the form the rest of the code already gives a dataclass.
"""
