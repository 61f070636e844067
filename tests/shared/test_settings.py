import pytest
from pydantic import ValidationError

from services.budget.config import BudgetSettings
from shared.settings import DEV_INTERNAL_SECRET


def test_settings_read_their_own_prefix(monkeypatch):
    monkeypatch.setenv("BUDGET_PORT", "9202")
    monkeypatch.setenv("CALENDAR_PORT", "9999")
    monkeypatch.setenv("BUDGET_DATABASE_URL", "postgresql+psycopg://u@db/budget")
    settings = BudgetSettings()
    assert (settings.port, settings.database_url) == (9202, "postgresql+psycopg://u@db/budget")


def test_production_refuses_the_default_internal_secret(monkeypatch):
    monkeypatch.setenv("MARKETPLAN_ENV", "production")
    monkeypatch.delenv("MARKETPLAN_INTERNAL_SECRET", raising=False)
    with pytest.raises(ValidationError, match="MARKETPLAN_INTERNAL_SECRET"):
        BudgetSettings()
    monkeypatch.setenv("MARKETPLAN_INTERNAL_SECRET", "p" * 40)
    assert BudgetSettings().internal_secret.get_secret_value() != DEV_INTERNAL_SECRET


def test_bad_values_fail_fast(monkeypatch):
    monkeypatch.setenv("BUDGET_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        BudgetSettings()
    monkeypatch.setenv("BUDGET_PORT", "8002")
    monkeypatch.setenv("MARKETPLAN_INTERNAL_SECRET", "short")
    with pytest.raises(ValidationError, match="internal_secret|MARKETPLAN_INTERNAL_SECRET"):
        BudgetSettings()
