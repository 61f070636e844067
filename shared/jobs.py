"""Durable jobs: a long POST answered `202` at once, run by any process of the service.

A service declares its job kinds (`JobQueue`), mounts the job routes (`JobQueue.router()`), lets
its long POSTs answer `Prefer: respond-async` (RFC 7240) with `JobQueue.submit`, and runs a
`JobRunner` in its lifespan with one callable per kind: the very use case its synchronous route
calls, so a job's `result` is exactly the synchronous answer.

Everything a job is lives in the service's own database (`job_table`), never in a process:
- any process claims queued work (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claims
  skip each other's rows; SQLite: the write lock taken by `BEGIN IMMEDIATE` serializes them);
- the claiming runner writes a heartbeat with the progress every `heartbeat_seconds`; a running
  job whose heartbeat lapsed (its process died) is claimed again, or failed with the reason
  after `max_attempts` claims;
- every write of a runner about a job is fenced by `claimed_by`, so a runner that lost its claim
  (paused past its lease) changes nothing and its work is told to stop;
- a cancel is a flag the heartbeat reads back, so the work's `cancelled()` turns true within one
  heartbeat; the best answer the work returns then is kept as the result.

Idempotency-Key works as on the synchronous call: a retried async POST returns the same job,
before or after it ended; the job's use case records the key's answer like the synchronous
route, so a synchronous replay of the key answers that one resource (and a job whose key a
synchronous call used first ends with that call's answer). A key whose job failed or was cancelled is
released, as a failed synchronous call records nothing.
"""
import asyncio
import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared.db import Instant, SessionDep, WriteSessionDep, write_engine
from shared.errors import (
    NotFound,
    Problem,
    ServiceUnavailable,
    UnprocessableContent,
    problem_body,
)
from shared.idempotency import KEY_LENGTH, REPLAYED_HEADER, Idempotency, Replay, fingerprint
from shared.ids import new_id
from shared.internal_auth import Caller, CallerDep, current_caller
from shared.prefer import RESPOND_ASYNC, prefers_async
from shared.requests import current_request_id
from shared.types import ID_LENGTH
from shared.workers import Cancelled

logger = logging.getLogger("marketplan.jobs")

TABLE_NAME = "job"
KIND_LENGTH = 50
PREFERENCE_APPLIED_HEADER = "Preference-Applied"

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
PROGRESS_KEYS = frozenset({"incumbent", "bound", "gap"})


def job_table(metadata: MetaData) -> Table:
    """Define the job table on a service's own metadata (add it by migration)."""
    return Table(
        TABLE_NAME, metadata,
        Column("id", String(ID_LENGTH), primary_key=True),
        Column("kind", String(KIND_LENGTH), nullable=False),
        # Who asked, and which roles could have made the call: only they may see the job.
        Column("principal", String(200), nullable=False),
        Column("role", String(20), nullable=False),
        Column("visible_to", String(100), nullable=False),
        Column("request_id", String(128), nullable=True),
        Column("idempotency_key", String(KEY_LENGTH), nullable=True),
        Column("fingerprint", String(64), nullable=False),
        Column("request_body", JSON(none_as_null=True), nullable=True),
        Column("path_params", JSON(none_as_null=True), nullable=True),
        Column("status", String(20), nullable=False),
        Column("progress", JSON(none_as_null=True), nullable=True),
        Column("result", JSON(none_as_null=True), nullable=True),
        Column("error", JSON(none_as_null=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("cancel_requested", Boolean, nullable=False, default=False),
        Column("claimed_by", String(200), nullable=True),
        Column("created_at", Instant, nullable=False),
        Column("started_at", Instant, nullable=True),
        Column("finished_at", Instant, nullable=True),
        Column("heartbeat_at", Instant, nullable=True),
        # NULL keys are distinct on both backends: only keyed jobs are unique per caller.
        UniqueConstraint("principal", "idempotency_key"),
        Index("ix_job_status_created_at", "status", "created_at"),
    )


class JobProgress(BaseModel):
    """How far a running solve is: the best objective found, the proven bound and their gap."""
    elapsed_seconds: float
    incumbent: float | None = None
    bound: float | None = None
    gap: float | None = None


class JobPublic(BaseModel):
    """A long call run as a job: `result` is what the synchronous call answers, `error` the
    problem document it would have answered instead."""
    id: str
    kind: str
    status: JobStatus
    progress: JobProgress | None
    result: Any | None
    error: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _public(row: Any) -> JobPublic:
    return JobPublic(id=row.id, kind=row.kind, status=row.status, progress=row.progress,
                     result=row.result, error=row.error,
                     cancel_requested=bool(row.cancel_requested), attempts=row.attempts,
                     created_at=row.created_at, started_at=row.started_at,
                     finished_at=row.finished_at)


def _prefer(request: Request, prefer: Annotated[str | None, Header(
        alias="Prefer",
        description="`respond-async` (RFC 7240): answer `202 Accepted` at once with the job's "
                    "`Location`, and follow its progress there instead of waiting.")] = None,
            ) -> bool:
    # Documented as one string (generated clients take no list-valued headers); a client that
    # repeats the header is still read whole.
    return prefer is not None and prefers_async(request.headers.getlist("prefer"))


PreferAsyncDep = Annotated[bool, Depends(_prefer)]

# For a long POST's `responses=`: the OpenAPI description of its asynchronous answer.
ASYNC_RESPONSES: dict[int | str, dict[str, Any]] = {202: {
    "model": JobPublic,
    "description": "Accepted as a job (sent `Prefer: respond-async`): follow `Location`.",
    "headers": {
        "Location": {"description": "The job: `/api/v1/<service>/jobs/{id}`.",
                     "schema": {"type": "string"}},
        PREFERENCE_APPLIED_HEADER: {"description": "`respond-async`.",
                                    "schema": {"type": "string"}},
    },
}}


@dataclass(frozen=True)
class JobKind:
    """A long call that can run as a job, and the roles its route admits (who may see it)."""
    name: str
    roles: tuple[str, ...]


class JobQueue:
    """One service's jobs: submitting, reading and cancelling them, and their routes."""

    def __init__(self, *, service: str, table: Table, kinds: Iterable[JobKind],
                 idempotency: Table | None = None):
        self.service = service
        self.table = table
        self.kinds = {kind.name: kind for kind in kinds}
        self.idempotency = idempotency
        self._runners: set[JobRunner] = set()

    def location(self, job_id: str) -> str:
        return f"/api/v1/{self.service}/jobs/{job_id}"

    def _find(self, session: Session, **where: Any) -> Any:
        conditions = [self.table.c[name] == value for name, value in where.items()]
        return session.execute(select(self.table).where(*conditions)).first()

    def _accepted(self, row: Any, *, replayed: bool) -> JSONResponse:
        headers = {"Location": self.location(row.id), PREFERENCE_APPLIED_HEADER: RESPOND_ASYNC}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return JSONResponse(jsonable_encoder(_public(row)), status_code=202, headers=headers)

    def _same_request(self, row: Any, idempotency: Idempotency) -> Any:
        if row.fingerprint != idempotency.fingerprint:
            raise UnprocessableContent(
                f"Idempotency-Key {idempotency.key!r} was already used for a different request. "
                "Use a new key for a new request, or resend exactly the first request to get "
                "its answer.")
        return row

    def submit(self, session: Session, *, kind: str, caller: Caller, body: BaseModel | None,
               params: Mapping[str, str] | None = None,
               idempotency: Idempotency | None = None) -> JSONResponse:
        """Queue `kind` for `body` (and the route's path `params`) and answer 202 with its
        `Location`; with an Idempotency-Key already used for this request, answer its job."""
        job_kind = self.kinds[kind]
        request_body = None if body is None else body.model_dump(mode="json", exclude_unset=True)
        key = idempotency.key if idempotency is not None else None
        if idempotency is not None and key is not None:
            if (row := self._find(session, principal=caller.principal, idempotency_key=key)):
                return self._accepted(self._same_request(row, idempotency), replayed=True)
            digest = idempotency.fingerprint
        else:
            digest = fingerprint("POST", kind, {"params": params, "body": request_body})
        job_id = new_id("job")
        try:
            session.execute(insert(self.table).values(
                id=job_id, kind=kind, principal=caller.principal, role=caller.role,
                visible_to=" ".join(job_kind.roles), request_id=current_request_id(),
                idempotency_key=key, fingerprint=digest, request_body=request_body,
                path_params=dict(params) if params else None, status="queued", attempts=0,
                cancel_requested=False, created_at=_now()))
            session.commit()
        except IntegrityError:
            # The same key committed first by a concurrent request: answer its job.
            session.rollback()
            if idempotency is None or key is None:
                raise
            row = self._find(session, principal=caller.principal, idempotency_key=key)
            return self._accepted(self._same_request(row, idempotency), replayed=True)
        # The answer shows the job as queued, even if a runner here claims it at once.
        accepted = self._accepted(self._find(session, id=job_id), replayed=False)
        for runner in list(self._runners):
            runner.wake()
        return accepted

    def _visible(self, session: Session, job_id: str, caller: Caller | None) -> Any:
        row = self._find(session, id=job_id)
        # A job the caller's role could not have asked for is as absent as a missing one.
        if row is None or (caller is not None and caller.role not in row.visible_to.split()):
            raise NotFound(f"No job {job_id!r} visible to role "
                           f"{caller.role if caller else 'any'!r}. Jobs are kept in the service "
                           "that answered 202; use the `Location` it gave.")
        return row

    def read(self, session: Session, job_id: str, caller: Caller | None = None) -> JobPublic:
        """Return the job with its progress, result or error (NotFound if `caller` may not
        see it)."""
        return _public(self._visible(session, job_id, caller))

    def request_cancel(self, session: Session, job_id: str,
                       caller: Caller | None = None) -> JobPublic:
        """Mark the job to stop: a queued job is cancelled at once, a running one within a
        heartbeat, keeping the best answer its solve found; a finished job stays as it is."""
        row = self._visible(session, job_id, caller)
        now, table = _now(), self.table
        session.execute(update(table).where(table.c.id == job_id, table.c.status == "queued")
                        .values(status="cancelled", cancel_requested=True, finished_at=now,
                                idempotency_key=None))
        session.execute(update(table).where(table.c.id == job_id, table.c.status == "running")
                        .values(cancel_requested=True))
        session.commit()
        return _public(self._find(session, id=row.id))

    def router(self) -> APIRouter:
        """The routes `GET …/jobs/{job_id}` and `POST …/jobs/{job_id}/cancel`."""
        router = APIRouter(prefix=f"/api/v1/{self.service}", tags=[self.service])

        @router.get("/jobs/{job_id}", response_model=JobPublic,
                    operation_id=f"read_{self.service}_job")
        def read_job(job_id: str, session: SessionDep, caller: CallerDep) -> JobPublic:
            """Read a job: its status, live progress, and result or error when it ends."""
            return self.read(session, job_id, caller)

        @router.post("/jobs/{job_id}/cancel", response_model=JobPublic,
                     operation_id=f"cancel_{self.service}_job")
        def cancel_job(job_id: str, session: WriteSessionDep, caller: CallerDep) -> JobPublic:
            """Stop a job within a second, keeping the best answer found so far as its result."""
            return self.request_cancel(session, job_id, caller)

        return router


def _finite(value: Any) -> float | None:
    # JSON has no infinity (PostgreSQL's json type refuses it, and so does the answer's
    # encoder), and "no bound yet" is what a solver's infinite bound means.
    return None if value is None or not math.isfinite(value) else float(value)


class JobCancelled(Exception):
    """Raised by a job's work that stopped on `cancelled()` with no answer worth keeping."""


@dataclass
class JobContext:
    """What a job's work gets: the request as submitted, who made it, and the two hooks."""
    job_id: str
    kind: str
    caller: Caller
    body: Any
    params: dict[str, str]
    idempotency: Idempotency | None
    _started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reported: dict[str, float | None] = field(default_factory=dict)
    _cancel: threading.Event = field(default_factory=threading.Event)

    def progress(self, values: Mapping[str, Any]) -> None:
        """Report a solver's progress as it relays it: its `incumbent`, `bound` and `gap` are
        kept (other figures, such as its own clock, are not: the job keeps its own), and an
        infinite bound or gap (none found yet) is shown as null. Call it as often as the solver
        reports: the runner writes at most one update per heartbeat."""
        with self._lock:
            self._reported.update({key: _finite(values[key])
                                   for key in PROGRESS_KEYS if key in values})

    def cancelled(self) -> bool:
        """True once the job should stop: cancelled by a user, or claimed by another runner."""
        return self._cancel.is_set()

    def stop(self) -> None:
        """Make `cancelled()` true (the runner calls it)."""
        self._cancel.set()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"elapsed_seconds": round(time.monotonic() - self._started, 3),
                    **self._reported}


Work = Callable[[JobContext], Any]


@dataclass(frozen=True)
class Claim:
    """A job this runner claimed: the row as claimed."""
    id: str
    kind: str
    attempt: int
    row: Any


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    result: Any = None
    error: dict[str, Any] | None = None


HEARTBEAT_SECONDS = 0.5
# A lapse must mean a dead process, not one slow heartbeat.
HEARTBEATS_PER_LEASE = 4
# The shortest lease a service's settings may ask for, with the default heartbeat.
MIN_LEASE_SECONDS = HEARTBEATS_PER_LEASE * HEARTBEAT_SECONDS


class JobRunner:
    """Claims a service's jobs and runs them, in its lifespan task (like the event consumer)."""

    def __init__(self, queue: JobQueue, *, engine: Engine, work: Mapping[str, Work],
                 concurrency: int = 1, poll_seconds: float = 0.5,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, lease_seconds: float = 10.0,
                 max_attempts: int = 3):
        unknown = set(work) - set(queue.kinds)
        if unknown:
            raise ValueError(f"work for undeclared job kinds: {sorted(unknown)}")
        if lease_seconds < HEARTBEATS_PER_LEASE * heartbeat_seconds:
            raise ValueError(f"lease_seconds must be at least {HEARTBEATS_PER_LEASE} heartbeats")
        self.queue = queue
        self.table = queue.table
        self.engine = write_engine(engine)
        self.read_engine = engine
        self.work = dict(work)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def _claimable(self, lapsed_before: datetime) -> Any:
        table = self.table
        return and_(table.c.kind.in_(list(self.work)), or_(
            table.c.status == "queued",
            and_(table.c.status == "running", table.c.heartbeat_at < lapsed_before)))

    def claim(self) -> Claim | None:
        """Claim the oldest queued job (or one whose runner stopped beating); None if none."""
        lapsed_before = _now() - self.lease
        with Session(self.read_engine) as session:
            # A plain read first: an idle poll takes no lock (on SQLite, not the write lock).
            if session.execute(select(self.table.c.id).where(self._claimable(lapsed_before))
                               .limit(1)).first() is None:
                return None
        table = self.table
        with Session(self.engine) as session:
            while True:
                row = session.execute(
                    select(table).where(self._claimable(lapsed_before))
                    .order_by(table.c.created_at, table.c.id).limit(1)
                    .with_for_update(skip_locked=True)).first()
                if row is None:
                    session.commit()
                    return None
                now = _now()
                if row.status == "running" and row.attempts >= self.max_attempts:
                    logger.warning("job %s failed: its runner stopped %d times", row.id,
                                   row.attempts)
                    session.execute(update(table).where(table.c.id == row.id).values(
                        status="failed", finished_at=now, claimed_by=None, idempotency_key=None,
                        error=ServiceUnavailable(
                            f"The process running this job stopped {row.attempts} times before "
                            "it finished, so it was not tried again. Send the request again; "
                            "if it keeps failing, lower its size or time limit.").body()))
                    continue
                if row.status == "running":
                    logger.warning("job %s: runner %s stopped beating; claimed again", row.id,
                                   row.claimed_by)
                session.execute(update(table).where(table.c.id == row.id).values(
                    status="running", claimed_by=self.name, attempts=row.attempts + 1,
                    started_at=now, heartbeat_at=now, progress={"elapsed_seconds": 0.0}))
                session.commit()
                return Claim(id=row.id, kind=row.kind, attempt=row.attempts + 1, row=row)

    def _mine(self, claim: Claim) -> Any:
        table = self.table
        return and_(table.c.id == claim.id, table.c.claimed_by == self.name,
                    table.c.status == "running")

    def beat(self, claim: Claim, progress: dict[str, Any]) -> bool | None:
        """Write the heartbeat and progress; return whether a cancel was requested, or None if
        the claim was lost (another runner has the job now)."""
        with Session(self.engine) as session:
            row = session.execute(update(self.table).where(self._mine(claim))
                                  .values(heartbeat_at=_now(), progress=progress)
                                  .returning(self.table.c.cancel_requested)).first()
            session.commit()
        return None if row is None else bool(row.cancel_requested)

    def finish(self, claim: Claim, outcome: Outcome, progress: dict[str, Any]) -> bool:
        """Store the outcome if the job is still this runner's; return whether it was."""
        released = {"idempotency_key": None} if outcome.status != "succeeded" else {}
        with Session(self.engine) as session:
            done = session.execute(update(self.table).where(self._mine(claim)).values(
                status=outcome.status, result=outcome.result, error=outcome.error,
                progress=progress, finished_at=_now(), heartbeat_at=_now(), **released)
                .returning(self.table.c.id)).first()
            session.commit()
        return done is not None

    def hand_back(self, claim: Claim) -> None:
        """Queue the job again for any process (this one is stopping); not counted as an
        attempt."""
        table = self.table
        with Session(self.engine) as session:
            session.execute(update(table).where(self._mine(claim)).values(
                status="queued", claimed_by=None, heartbeat_at=None,
                attempts=table.c.attempts - 1))
            session.commit()

    def context(self, claim: Claim) -> JobContext:
        records = self.queue.idempotency
        idempotency = None if records is None else Idempotency(
            table=records, principal=claim.row.principal, key=claim.row.idempotency_key,
            fingerprint=claim.row.fingerprint)
        return JobContext(job_id=claim.id, kind=claim.kind,
                          caller=Caller(claim.row.principal, claim.row.role),
                          body=claim.row.request_body, params=claim.row.path_params or {},
                          idempotency=idempotency)

    def execute(self, claim: Claim, context: JobContext) -> Outcome:
        """Run the kind's work (in a worker thread) and say how the job ended."""
        caller, request_id = current_caller.set(context.caller), correlation_id.set(
            claim.row.request_id)
        try:
            answer = self.work[claim.kind](context)
            # A model dumps itself to JSON types in one pass; jsonable_encoder would walk the
            # dump again in Python (0.7 s on a 52,000-cell plan).
            result = (answer.model_dump(mode="json", by_alias=True)
                      if isinstance(answer, BaseModel) else jsonable_encoder(answer))
        except Replay as replay:
            # A concurrent synchronous call with the same key committed first: its answer is
            # the one resource this request makes.
            result = replay.body
        except (JobCancelled, Cancelled):
            # Cancelled: the worker pool stopped the solve with no answer to keep.
            return Outcome("cancelled")
        except Problem as problem:
            return Outcome("cancelled" if context.cancelled() else "failed", error=problem.body())
        except Exception as error:
            logger.error("job %s (%s) failed", claim.id, claim.kind, exc_info=error)
            return Outcome("failed", error=problem_body(
                500, Problem.title, "An unexpected error occurred. It has been logged; quote "
                f"the job id {claim.id} when reporting it.", slug=Problem.slug))
        finally:
            current_caller.reset(caller)
            correlation_id.reset(request_id)
        return Outcome("cancelled" if context.cancelled() else "succeeded", result=result)

    async def _beat(self, claim: Claim, context: JobContext) -> None:
        try:
            cancel = await asyncio.to_thread(self.beat, claim, context.snapshot())
        except Exception as error:  # the next heartbeat tries again; a lapse re-runs the job
            logger.warning("job %s: could not write its heartbeat: %s", claim.id, error)
            return
        if cancel is None:
            logger.warning("job %s was claimed by another runner; stopping it here", claim.id)
        if cancel is None or cancel:
            context.stop()

    async def _run(self, claim: Claim, pool: ThreadPoolExecutor) -> None:
        context = self.context(claim)
        running = asyncio.get_running_loop().run_in_executor(pool, self.execute, claim, context)
        try:
            while not (await asyncio.wait({running}, timeout=self.heartbeat_seconds))[0]:
                await self._beat(claim, context)
            if not await asyncio.to_thread(self.finish, claim, running.result(),
                                           context.snapshot()):
                logger.warning("job %s ended here after another runner claimed it; its "
                               "outcome here is dropped", claim.id)
        except asyncio.CancelledError:
            # The service is stopping: another process (or this one, restarted) runs the job.
            # The thread cannot be killed; the service's worker pool closing ends its solve.
            await asyncio.to_thread(self.hand_back, claim)
            raise
        except Exception as error:  # the outcome was not written: a lapse re-runs the job
            logger.warning("job %s: could not write its outcome: %s", claim.id, error)
        finally:
            if self._wake is not None:
                self._wake.set()

    def wake(self) -> None:
        """Look for work now rather than at the next poll (safe from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _claim(self) -> Claim | None:
        claiming = asyncio.create_task(asyncio.to_thread(self.claim))
        try:
            return await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # A cancelled await leaves the claim's thread running: a job it claims is handed
            # back now rather than left to wait for its lease to lapse.
            await asyncio.wait([claiming])
            late = None if claiming.exception() else claiming.result()
            if late is not None:
                await asyncio.to_thread(self.hand_back, late)
            raise

    async def run(self) -> None:
        """Claim and run jobs until cancelled (the service's lifespan owns this task)."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        running: set[asyncio.Task[None]] = set()
        # The work gets threads of its own: the heartbeats, on the default executor, must not
        # queue behind long solves.
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")
        self.queue._runners.add(self)
        try:
            while True:
                self._wake.clear()
                while len(running) < self.concurrency:
                    try:
                        claim = await self._claim()
                    except Exception as error:  # the database is down: try at the next poll
                        logger.warning("claiming jobs failed: %s", error)
                        break
                    if claim is None:
                        break
                    task = asyncio.create_task(self._run(claim, pool))
                    running.add(task)
                    task.add_done_callback(running.discard)
                # Not asyncio.wait_for: on Python 3.11 it drops a stop that comes as the wake
                # does, and the service's shutdown then waits on this task for ever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
        finally:
            self.queue._runners.discard(self)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            pool.shutdown(wait=False, cancel_futures=True)

