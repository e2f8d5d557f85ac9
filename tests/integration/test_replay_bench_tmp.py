import time
from test_projection_support import EventWriter, populate, high_watermarks
from projections.replay import replay
from projections.migrations import migrate
from streams.topics import ensure_topics


def test_bench(settings):
    ensure_topics(settings)
    w = EventWriter(settings)
    t = time.perf_counter()
    populate(w, "a", users=40000, workspaces=8000)
    w.flush()
    print("produced", sum(high_watermarks(settings, settings.topic("events")).values()), time.perf_counter() - t)
    migrate(settings.resolved_database_url)
    r = replay(settings, "all", progress=False)
    for p in r.parts:
        print(p.name, p.events, round(p.seconds, 2), round(p.events_per_second))
