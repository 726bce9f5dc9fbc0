"""The typed settings layer: each variable's type and bounds, an empty variable as unset,
and a bad value stopping a service with a message that names the variable."""

from __future__ import annotations

import pytest

from services.common.settings import Downstream, Shared, every_settings_class
from services.matching.config import MatchingSettings
from services.order.config import OrderSettings
from services.persistence.config import Settings as PersistenceSettings


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for cls in every_settings_class():
        for variable in cls.variables():
            monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_defaults_are_written_once_and_read_by_every_service(clean):
    clean.setenv("BOURSE_DB_URLS", "sqlite:///x.sqlite")
    clean.setenv("BOURSE_SHARD_RANGES", "A-Z")  # one shard: the default matching address is its
    order, matching, persistence = OrderSettings.from_env(), MatchingSettings.from_env(), PersistenceSettings.from_env()
    assert order.drain_seconds == matching.drain_seconds == persistence.drain_seconds == Shared().drain_ms / 1000
    assert order.persistence_address == matching.persistence_address == persistence.address == "127.0.0.1:50070"
    assert order.batching.linger_s == matching.batch_linger_s == Downstream().batch_linger_us / 1e6


def test_the_group_commit_lingers_as_the_replicas_unless_set_apart(clean):
    clean.setenv("BOURSE_SHARD_RANGES", "A-Z")
    clean.setenv("BOURSE_BATCH_LINGER_US", "2000")
    assert OrderSettings.from_env().batching.linger_s == MatchingSettings.from_env().batch_linger_s == 0.002
    clean.setenv("BOURSE_COMMIT_LINGER_US", "0")
    assert (OrderSettings.from_env().batching.linger_s, MatchingSettings.from_env().batch_linger_s) == (0.002, 0.0)


def test_a_value_is_typed_and_an_empty_one_is_unset(clean):
    clean.setenv("BOURSE_SHARD_RANGES", "A-Z")
    clean.setenv("BOURSE_ORDER_ENTRY_WINDOW", "250")
    clean.setenv("BOURSE_DRAIN_MS", "")
    settings = OrderSettings.from_env()
    assert (settings.order_entry_window, settings.drain_seconds) == (250, 2.0)


@pytest.mark.parametrize("variable, value, says", [
    ("BOURSE_DRAIN_MS", "soon", "BOURSE_DRAIN_MS: input should be a valid integer"),
    ("BOURSE_NODE_ID", "512", "BOURSE_NODE_ID: input should be less than or equal to 511, got '512' "
                              "(unique per order-service replica)"),
    ("BOURSE_BATCHES_IN_FLIGHT", "0", "BOURSE_BATCHES_IN_FLIGHT: input should be greater than 0"),
    ("BOURSE_RATE_PER_KEY", "1.5", "BOURSE_RATE_PER_KEY"),
])
def test_a_bad_value_stops_the_service_naming_the_variable(clean, variable, value, says):
    clean.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        OrderSettings.from_env()
    assert says in str(stopped.value)


def test_a_required_variable_says_what_it_wants(clean):
    with pytest.raises(SystemExit, match=r"BOURSE_DB_URLS is required \(comma-separated SQLAlchemy URLs"):
        PersistenceSettings.from_env()


def test_a_boolean_takes_the_usual_spellings_and_nothing_else(clean):
    clean.setenv("BOURSE_DB_URLS", "postgresql+psycopg://u@h/db")
    clean.setenv("BOURSE_DIRECT_WRITES", "off")
    assert MatchingSettings.from_env().direct_db_urls == {0: None}
    clean.setenv("BOURSE_DIRECT_WRITES", "on")
    assert MatchingSettings.from_env().direct_db_urls == {0: "postgresql+psycopg://u@h/db"}
    clean.setenv("BOURSE_DIRECT_WRITES", "sometimes")
    with pytest.raises(SystemExit, match="BOURSE_DIRECT_WRITES"):
        MatchingSettings.from_env()
