from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.jobs import MIN_LEASE_SECONDS
from shared.settings import DatabaseSettings, Port


class PlannerSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLANNER_")

    port: Port = 8003
    database_url: str = "sqlite:///var/planner.db"
    # Processes that run schedule solves (CP-SAT), each one solve at a time.
    solver_workers: int = Field(2, ge=1, le=64)
    # A solve's worker is killed this long after the solve's own time limit: the engine keeps
    # its limit within 0.5 s, so this covers only a stuck worker.
    solve_grace_seconds: float = Field(2, gt=0)
    # Whether this process runs queued jobs (long solves sent with `Prefer: respond-async`);
    # off, it only queues them for the processes that do.
    run_jobs: bool = True
    # A running job whose heartbeat (every 0.5 s) is older than this is taken for a job whose
    # process died, and is claimed again; at least 4 heartbeats, so one slow heartbeat does
    # not look like a dead process.
    job_lease_seconds: float = Field(10, ge=MIN_LEASE_SECONDS, le=3600)
    # Tasks are generated from the milestones this calendar service reports.
    calendar_url: str = "http://127.0.0.1:8001"
    # Campaign funding (the overview, plan-a-campaign) comes from this budget service.
    budget_url: str = "http://127.0.0.1:8002"
    # The campaign overview waits this long for each other service, then answers without it
    # (listed in `partial`): a service that is down must not make the overview slow.
    overview_timeout_seconds: float = Field(2.0, gt=0, le=30)
    # Seconds between reads of the calendar's event feed; 0 turns the consumer off (the sync
    # status still answers), e.g. for a process that only serves requests.
    events_poll_seconds: float = Field(0.5, ge=0, le=300)
    # A consumer whose lease (renewed at each poll) is older than this is taken for a dead
    # process: with several processes, another one takes over the event feed after it.
    events_lease_seconds: float = Field(10, ge=1, le=3600)
    # Re-plan every stale schedule as soon as a calendar change makes it stale (as the re-plan
    # route would, work started by today kept), instead of waiting for someone to ask.
    auto_replan: bool = False
    # TEST HOOK, never set in a deployment: a committed plan-a-campaign fails at this step
    # (after doing it), so the tests can watch the earlier steps being undone.
    fail_step: Literal["campaign", "tasks", "funding"] | None = None

    @model_validator(mode="after")
    def _no_test_hook_in_production(self) -> "PlannerSettings":
        if self.fail_step is not None and self.environment == "production":
            raise ValueError("PLANNER_FAIL_STEP is a test hook; unset it in production")
        return self
