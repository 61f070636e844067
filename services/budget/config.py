from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.jobs import MIN_LEASE_SECONDS
from shared.settings import DatabaseSettings, Port


class BudgetSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUDGET_")

    port: Port = 8002
    database_url: str = "sqlite:///var/budget.db"
    # Processes that run optimizer solves; each holds one solve at a time.
    solver_workers: int = Field(2, ge=1, le=64)
    # A solve is stopped this long after its own time limit: the optimizer keeps that limit
    # itself (building the model and describing the plan included), so this is only a margin
    # for the worker's round trip, not a second allowance (issue 12, fault 9).
    solve_grace_seconds: float = Field(2, gt=0)
    # Whether this process runs queued jobs (long solves sent with `Prefer: respond-async`);
    # off, it only queues them for the processes that do.
    run_jobs: bool = True
    # A running job whose heartbeat (every 0.5 s) is older than this is taken for a job whose
    # process died, and is claimed again; at least 4 heartbeats, so one slow heartbeat does
    # not look like a dead process.
    job_lease_seconds: float = Field(10, ge=MIN_LEASE_SECONDS, le=3600)
    # Campaigns linked to a budget are checked there.
    calendar_url: str = "http://127.0.0.1:8001"
    # Seconds between reads of the calendar's event feed; 0 turns the consumer off (the sync
    # status still answers), e.g. for a process that only serves requests.
    events_poll_seconds: float = Field(0.5, ge=0, le=300)
    # A consumer whose lease (renewed at each poll) is older than this is taken for a dead
    # process: with several processes, another one takes over the event feed after it.
    events_lease_seconds: float = Field(10, ge=1, le=3600)
    # Variance and review answers each process keeps (`ledger.kept`), in bytes of their text:
    # 64 MiB holds those of about 40 budgets of 50 channels × 53 weeks. 0 keeps none.
    kept_answers_bytes: int = Field(64 * 2**20, ge=0)
