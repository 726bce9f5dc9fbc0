"""The load generator's view of the stack's metrics: a real /metrics page scraped over
HTTP, and the per-second series made from two scrapes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, start_http_server

from loadgen import stack_metrics


def test_scrapes_a_metrics_page_and_turns_two_scrapes_into_per_second_values(tmp_path):
    registry = CollectorRegistry()
    commands = Histogram("bourse_group_commit_commands", "c", ["shard"], registry=registry, buckets=(1, 10, 100))
    seconds = Histogram("bourse_group_commit_duration_seconds", "s", ["shard"], registry=registry)
    database = Histogram("bourse_persistence_commit_duration_seconds", "d", ["shard"], registry=registry)
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        scraper = stack_metrics.Scraper({"matching-0": url}, every_s=0.2).start()
        try:
            import time

            time.sleep(0.3)  # a first scrape before the commits
            for size in (4, 6):  # two commits of shard 2: 10 commands, 3 ms and 2 ms of commit each
                commands.labels("2").observe(size)
                seconds.labels("2").observe(0.004)
                database.labels("2").observe(0.0025)
            time.sleep(0.5)
        finally:
            snapshots = scraper.stop()
    finally:
        server.shutdown()
    assert scraper.failures == 0 and len(snapshots) >= 3
    lines = stack_metrics.series(snapshots)
    assert list(lines) == ["matching-0/2"]
    line = lines["matching-0/2"]
    busy = [i for i, rate in enumerate(line["commits_per_s"]) if rate]
    assert len(busy) == 1  # the interval the two commits fell in
    (i,) = busy
    assert (line["commands_per_commit"][i], line["group_commit_ms"][i], line["database_commit_ms"][i]) == (5.0, 4.0, 2.5)
    stack_metrics.plot(str(tmp_path / "m.png"), lines, "test")
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_an_interval_is_known_only_from_a_scrape_before_it_and_without_a_restart():
    count = ("matching-0", "bourse_group_commit_commands_count", "0")
    up = ("matching-0", "up", "")
    unscraped = (0.0, {})  # the process did not answer then
    assert stack_metrics.series([unscraped, (1.0, {up: 1.0, count: 5.0})]) == {}
    restarted = [(0.0, {up: 1.0, count: 50.0}), (1.0, {up: 1.0, count: 5.0})]
    assert stack_metrics.series(restarted) == {}
    first_commits = [(0.0, {up: 1.0}), (2.0, {up: 1.0, count: 5.0})]  # no samples yet: zero before
    assert stack_metrics.series(first_commits)["matching-0/0"]["commits_per_s"] == [2.5]
