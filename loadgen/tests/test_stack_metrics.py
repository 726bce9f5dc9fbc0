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


def test_hops_sum_the_whole_run_per_hop():
    def scrape(replica_batches, replica_commands, replica_s, commits, commands, commit_s, database_s):
        return {("order-0", "up", ""): 1.0, ("order-1", "up", ""): 1.0, ("matching-0", "up", ""): 1.0,
                # two replicas' batches to one matching process: summed as one hop
                ("order-0", "bourse_order_batch_commands_count", "m:1"): replica_batches,
                ("order-0", "bourse_order_batch_commands_sum", "m:1"): replica_commands,
                ("order-0", "bourse_order_batch_duration_seconds_sum", "m:1"): replica_s,
                ("order-1", "bourse_order_batch_commands_count", "m:1"): replica_batches,
                ("order-1", "bourse_order_batch_commands_sum", "m:1"): replica_commands,
                ("order-1", "bourse_order_batch_duration_seconds_sum", "m:1"): replica_s,
                ("matching-0", "bourse_group_commit_commands_count", "1"): commits,
                ("matching-0", "bourse_group_commit_commands_sum", "1"): commands,
                ("matching-0", "bourse_group_commit_duration_seconds_sum", "1"): commit_s,
                ("matching-0", "bourse_persistence_commit_duration_seconds_sum", "1"): database_s}

    before = scrape(10, 100, 0.1, 40, 400, 0.2, 0.1)
    middle = scrape(20, 500, 0.2, 60, 600, 0.3, 0.2)  # what lies between the ends does not count
    after = scrape(30, 700, 0.4, 80, 1200, 0.4, 0.3)  # +20 batches of 600 commands, 0.3 s, each replica
    hops = stack_metrics.hops([(0.0, before), (1.0, middle), (2.0, after)])
    assert hops == {
        "group commits shard 1": {"per_s": 20.0, "commands": 20.0, "ms": 5.0, "database_ms": 5.0},
        "replica batches": {"per_s": 20.0, "commands": 30.0, "ms": 15.0},
    }
    restarted = scrape(5, 150, 0.1, 80, 1200, 0.4, 0.3)  # the replicas restarted: counted from zero
    assert stack_metrics.hops([(0.0, before), (2.0, restarted)])["replica batches"] == {
        "per_s": 5.0, "commands": 30.0, "ms": 20.0}
    assert stack_metrics.hops([(0.0, before)]) == {}
