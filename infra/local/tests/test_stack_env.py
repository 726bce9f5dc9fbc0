"""What the local stack hands its order replicas (nothing is started here)."""

from __future__ import annotations

from infra.local.stack import Stack


def test_a_lone_replica_sends_two_batches_at_a_time_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("BOURSE_BATCHES_IN_FLIGHT", raising=False)
    assert Stack(order_replicas=1, log_dir=str(tmp_path)).replica_env() == {"BOURSE_BATCHES_IN_FLIGHT": "2"}
    assert Stack(order_replicas=2, log_dir=str(tmp_path)).replica_env() == {}
    told = Stack(order_replicas=1, log_dir=str(tmp_path), service_env={"BOURSE_BATCHES_IN_FLIGHT": "1"})
    assert told.replica_env() == {}
    monkeypatch.setenv("BOURSE_BATCHES_IN_FLIGHT", "3")
    assert Stack(order_replicas=1, log_dir=str(tmp_path)).replica_env() == {}
