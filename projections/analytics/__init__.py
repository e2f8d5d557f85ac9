"""Analytics rollups: per event type, per minute and hour, per partition of the topic.

Events are keyed by user, so each partition sees disjoint users and has a single writer;
a query adds the partitions' rows up (and unions their unique-user sketches).
"""
