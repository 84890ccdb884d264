"""Hold-then-capture pairs per second for the money ledger, on SQLite and PostgreSQL.

What runs: ``lumigram.services.ledger.Ledger`` over ``LedgerRepository``, with the
engine and session factory the bot uses (``db.engine.create_engine`` /
``create_sessionmaker``: SQLite in WAL mode with BEGIN IMMEDIATE, PostgreSQL over
asyncpg with a 10 + 20 connection pool and pre-ping), on a freshly migrated
database. No bot, no emulator: only the money path.

One *pair* is what a paid generation does to the books: a transaction that holds
the job's price (``Ledger.hold(job, user, Funding(Account.CREDITS, price), units)``)
and commits, as the confirm handler does at queue time; then a second transaction
that captures it (``Ledger.capture(job, delivered=units)``) and commits, as the
worker does at delivery. Each transaction has its own session. The job rows, the
users and their credits (``Ledger.post(..., EntryKind.TOP_UP, key)``) are created
before the clock starts.

Scenarios, each timed on its own:

* 1 spender: one task, N pairs back to back, one user;
* 50 spenders, 1 user: 50 asyncio tasks share the N pairs, all spending from the
  same user's balance (every hold updates the same balance row: the contended case);
* 50 spenders, 50 users: the same with a user per task (no shared balance row).

Every task first does one pair that is not counted (connections opened, the
user's ``credits:held`` row created). A pair's latency runs from the start of its
hold transaction to the commit of its capture, so with 50 spenders it includes
waiting for a pooled connection, for SQLite's write lock or for PostgreSQL's row
lock. After each scenario the books are checked: ``LedgerRepository.discrepancies()``
must be empty and each user's credits (held included) must equal the top-up minus
everything captured.

PostgreSQL: the database ``bench_lumigram_money`` on the server of ``--pg-url`` is
dropped and created afresh (over an AUTOCOMMIT connection to the URL's database),
and dropped at the end; if the server cannot be reached that part is skipped.

    .venv/bin/python bench/money_throughput.py [--pairs 500] [--database both]
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import percentile
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lumigram.db import tables
from lumigram.db.engine import create_engine, create_sessionmaker
from lumigram.db.mapping import map_entities
from lumigram.db.migrate import upgrade
from lumigram.db.repositories.ledger import LedgerRepository
from lumigram.domain.money import Account, EntryKind, Funding
from lumigram.services.ledger import Ledger

Sessions = async_sessionmaker[AsyncSession]

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BENCH_DATABASE = "bench_lumigram_money"
PRICE = 4  # credits held per job
UNITS = 2  # images per job; all are delivered, so the whole price is captured
CREDITS = Account.CREDITS.value
HELD = Account.CREDITS.held
PG_CONNECT_TIMEOUT = 10.0  # seconds before the PostgreSQL server counts as unreachable


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    spenders: int  # concurrent asyncio tasks
    users: int  # distinct users they spend from (1: all on one balance)
    first_user_id: int


SCENARIOS = (
    Scenario("1 spender", spenders=1, users=1, first_user_id=10_000),
    Scenario("50 spenders, 1 user", spenders=50, users=1, first_user_id=20_000),
    Scenario("50 spenders, 50 users", spenders=50, users=50, first_user_id=30_000),
)


@dataclass(slots=True)
class Work:
    """One spender's jobs: (job id, user id), the first one for the warm-up."""

    jobs: list[tuple[int, int]]


@dataclass
class Outcome:
    database: str
    scenario: Scenario
    seconds: float = 0.0
    pair_ms: list[float] = field(default_factory=list)
    hold_ms: list[float] = field(default_factory=list)
    capture_ms: list[float] = field(default_factory=list)
    captured: Counter[int] = field(default_factory=Counter)  # user id -> credits captured
    failures: Counter[str] = field(default_factory=Counter)
    statements: int = 0  # SQL statements sent during the timed part
    sql_seconds: float = 0.0  # time inside those statements, summed over the spenders
    sql_by_kind: dict[str, float] = field(default_factory=dict)  # "UPDATE balances" -> seconds
    cpu_seconds: float = 0.0  # this process's CPU time during the timed part
    books: str = ""
    books_ok: bool = False

    @property
    def pairs(self) -> int:
        return len(self.pair_ms)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500, help="timed pairs per scenario")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="both", help="where to run"
    )
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help=f"a PostgreSQL server; the benchmark uses its own database {BENCH_DATABASE} there",
    )
    args = parser.parse_args()
    if args.pairs < max(s.spenders for s in SCENARIOS):
        parser.error("--pairs must be at least 50 (one per spender)")
    return args


# --- set-up ------------------------------------------------------------------------------


def job_row(user_id: int, now: datetime) -> dict[str, Any]:
    """A queued job with every NOT NULL column (as in tests/services/test_ledger.py)."""
    return {
        "user_id": user_id,
        "chat_id": user_id,
        "language": "en",
        "model_id": "demo",
        "provider": "demo",
        "provider_model": "demo-art",
        "mode": "custom",
        "prompt": "p",
        "final_prompt": "p",
        "settings": {},
        "reference_files": [],
        "status": "queued",
        "step": "submit",
        "next_attempt_at": now,
        "result_files": [],
        "created_at": now,
        "updated_at": now,
    }


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def prepare(sessions: Sessions, scenario: Scenario, pairs: int) -> tuple[list[Work], int]:
    """Users, their credits and every job row; returns each spender's jobs and the top-up."""
    now = datetime.now(UTC)
    user_ids = [scenario.first_user_id + i for i in range(scenario.users)]
    # Spender i spends from user i (or from the only user); +1 job each for the warm-up.
    per_spender = [n + 1 for n in split(pairs, scenario.spenders)]
    owners = [user_ids[i % scenario.users] for i in range(scenario.spenders)]
    jobs_per_user = Counter[int]()
    for owner, count in zip(owners, per_spender, strict=True):
        jobs_per_user[owner] += count
    top_up = PRICE * max(jobs_per_user.values()) + 1_000
    async with sessions() as session:
        await session.execute(
            tables.users.insert(),
            [
                {
                    "id": user_id,
                    "language": "en",
                    "referral_code": f"b{user_id}",
                    "created_at": now,
                    "last_seen_at": now,
                }
                for user_id in user_ids
            ],
        )
        await session.execute(
            tables.jobs.insert(),
            [job_row(user_id, now) for user_id in user_ids for _ in range(jobs_per_user[user_id])],
        )
        ledger = Ledger(LedgerRepository(session))
        for user_id in user_ids:
            await ledger.post(user_id, CREDITS, top_up, EntryKind.TOP_UP, f"bench:top-up:{user_id}")
        rows = await session.execute(
            select(tables.jobs.c.user_id, tables.jobs.c.id)
            .where(tables.jobs.c.user_id.in_(user_ids))
            .order_by(tables.jobs.c.id)
        )
        free: dict[int, list[int]] = {user_id: [] for user_id in user_ids}
        for user_id, job_id in rows.all():
            free[user_id].append(int(job_id))
        await session.commit()
    work = []
    for owner, count in zip(owners, per_spender, strict=True):
        taken, free[owner] = free[owner][:count], free[owner][count:]
        work.append(Work([(job_id, owner) for job_id in taken]))
    return work, top_up


# --- the measurement ---------------------------------------------------------------------


async def pair(sessions: Sessions, job_id: int, user_id: int, outcome: Outcome | None) -> None:
    """Hold the job's price and commit; capture it in a second transaction and commit."""
    started = time.perf_counter()
    try:
        async with sessions() as session:
            await Ledger(LedgerRepository(session)).hold(
                job_id, user_id, Funding(Account.CREDITS, PRICE), units=UNITS
            )
            await session.commit()
    except Exception as error:  # counted and reported; the run goes on
        if outcome is not None:
            outcome.failures[f"hold: {type(error).__name__}: {str(error)[:80]}"] += 1
        return
    held = time.perf_counter()
    try:
        async with sessions() as session:
            hold = await Ledger(LedgerRepository(session)).capture(job_id, delivered=UNITS)
            await session.commit()
    except Exception as error:
        if outcome is not None:
            outcome.failures[f"capture: {type(error).__name__}: {str(error)[:80]}"] += 1
        return
    done = time.perf_counter()
    if outcome is not None and hold is not None:
        outcome.pair_ms.append((done - started) * 1000)
        outcome.hold_ms.append((held - started) * 1000)
        outcome.capture_ms.append((done - held) * 1000)
        outcome.captured[user_id] += hold.captured


async def spender(sessions: Sessions, jobs: Sequence[tuple[int, int]], outcome: Outcome) -> None:
    for job_id, user_id in jobs:
        await pair(sessions, job_id, user_id, outcome)


async def warm_up(sessions: Sessions, work: list[Work], outcome: Outcome) -> None:
    """One uncounted pair per spender, all at once; its capture still counts in the books."""
    warm = Outcome(outcome.database, outcome.scenario)
    await asyncio.gather(*(pair(sessions, *w.jobs[0], warm) for w in work))
    outcome.captured.update(warm.captured)
    outcome.failures.update({f"warm-up {k}": v for k, v in warm.failures.items()})


def statement_kind(statement: str) -> str:
    """'INSERT INTO balances', 'UPDATE holds', 'SELECT FROM holds', 'SAVEPOINT'..."""
    words = statement.split()
    if not words:
        return "?"
    verb = words[0].upper()
    if verb == "INSERT":
        return " ".join(words[:3])
    if verb in ("UPDATE", "BEGIN", "RELEASE"):
        return " ".join(words[:2])
    if verb == "SELECT" and "FROM" in words:
        return f"SELECT FROM {words[words.index('FROM') + 1]}"
    return verb


class StatementTimer:
    """Counts the SQL statements sent and the time spent in them (lock waits included)."""

    def __init__(self, engine: AsyncEngine, outcome: Outcome) -> None:
        self._engine = engine.sync_engine
        self._outcome = outcome

    def _before(self, conn: Connection, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info.pop("bench_started", None)
        if started is None:
            return
        seconds = time.perf_counter() - started
        outcome = self._outcome
        outcome.statements += 1
        outcome.sql_seconds += seconds
        kind = statement_kind(statement)
        outcome.sql_by_kind[kind] = outcome.sql_by_kind.get(kind, 0.0) + seconds

    def __enter__(self) -> StatementTimer:
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)


async def check_books(sessions: Sessions, outcome: Outcome, users: list[int], top_up: int) -> None:
    async with sessions() as session:
        ledger = Ledger(LedgerRepository(session))
        problems = await ledger.discrepancies()
        wrong = []
        totals = [0, 0, 0]  # credits, held, captured over the scenario's users
        for user_id in users:
            balances = await ledger.balances(user_id)
            captured = outcome.captured[user_id]
            if balances[CREDITS] + balances[HELD] != top_up - captured:
                wrong.append(
                    f"user {user_id}: {balances[CREDITS]} + {balances[HELD]} held"
                    f" != {top_up} - {captured}"
                )
            totals[0] += balances[CREDITS]
            totals[1] += balances[HELD]
            totals[2] += captured
    outcome.books_ok = not problems and not wrong
    verdict = "ok" if outcome.books_ok else "WRONG"
    outcome.books = (
        f"books {verdict}: {len(problems)} discrepancies; {len(users)} user(s), credits"
        f" {top_up * len(users)} - {totals[2]} captured = {totals[0]} left + {totals[1]} held"
    )
    for line in (*problems, *wrong)[:5]:
        outcome.books += f"\n    {line}"


async def run_scenario(
    engine: AsyncEngine, sessions: Sessions, database: str, scenario: Scenario, pairs: int
) -> Outcome:
    outcome = Outcome(database, scenario)
    work, top_up = await prepare(sessions, scenario, pairs)
    await warm_up(sessions, work, outcome)
    with StatementTimer(engine, outcome):
        cpu_started, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(spender(sessions, w.jobs[1:], outcome) for w in work))
        outcome.seconds = time.perf_counter() - started
        outcome.cpu_seconds = time.process_time() - cpu_started
    users = sorted({user_id for w in work for _, user_id in w.jobs})
    await check_books(sessions, outcome, users, top_up)
    return outcome


async def run_database(url: str, label: str, pairs: int) -> list[Outcome]:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = create_sessionmaker(engine)
        outcomes = []
        for scenario in SCENARIOS:
            outcome = await run_scenario(engine, sessions, label, scenario, pairs)
            print_outcome(outcome)
            outcomes.append(outcome)
        return outcomes
    finally:
        await engine.dispose()


async def run_sqlite(pairs: int) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="lumigram-money-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'money.db'}"
        return await run_database(url, "SQLite", pairs)


async def recreate_pg_database(admin: AsyncEngine) -> None:
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))


async def run_postgresql(pg_url: str, pairs: int) -> list[Outcome]:
    server = make_url(pg_url)
    if server.get_backend_name() != "postgresql":
        raise SystemExit("--pg-url must be postgresql+asyncpg://user@host:port/database")
    if server.database == BENCH_DATABASE:
        raise SystemExit(f"--pg-url must name another database than {BENCH_DATABASE}")
    admin = create_engine(server.render_as_string(hide_password=False))
    try:
        try:
            await asyncio.wait_for(recreate_pg_database(admin), PG_CONNECT_TIMEOUT)
        except (OSError, SQLAlchemyError, TimeoutError) as error:
            shown = server.render_as_string(hide_password=True)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"\nPostgreSQL skipped: cannot use {shown} ({reason})")
            return []
        url = server.set(database=BENCH_DATABASE).render_as_string(hide_password=False)
        try:
            return await run_database(url, "PostgreSQL", pairs)
        finally:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)'))
    finally:
        await admin.dispose()


# --- the report ----------------------------------------------------------------------------

COLUMNS = (
    ("database", 10),
    ("scenario", 21),
    ("pairs", 5),
    ("seconds", 7),
    ("pairs/s", 7),
    ("pair p50 / p95 / p99 ms", 23),
    ("hold p50", 8),
    ("capture p50", 11),
    ("stmts/pair", 10),
    ("in SQL ms/pair", 14),
    ("client CPU", 10),
    ("failed", 6),
)

NOTES = """\
pair: hold transaction + capture transaction, each committed; latency from the start of
  the hold to the capture's commit (pool, write-lock and row-lock waits included).
stmts/pair: SQL statements sent (cursor executes: BEGIN IMMEDIATE and SAVEPOINTs count,
  COMMIT does not; PostgreSQL's BEGIN is implicit and the pool's pre-ping is not counted).
in SQL ms/pair: wall time inside those statements, summed over all spenders / pairs: the
  database's work plus the driver round trip plus waits for locks; the rest of a pair's
  latency is Python (SQLAlchemy, asyncio, the ledger) and waiting for the event loop.
client CPU: this process's CPU time / wall time (all threads; 100 % = one core)."""


def cells(outcome: Outcome) -> list[str]:
    pairs = outcome.pairs
    ms = outcome.pair_ms
    return [
        outcome.database,
        outcome.scenario.name,
        str(pairs),
        f"{outcome.seconds:.2f}",
        f"{pairs / outcome.seconds:.0f}" if outcome.seconds else "n/a",
        f"{percentile(ms, 50):.1f} / {percentile(ms, 95):.1f} / {percentile(ms, 99):.1f}",
        f"{percentile(outcome.hold_ms, 50):.1f}",
        f"{percentile(outcome.capture_ms, 50):.1f}",
        f"{outcome.statements / pairs:.1f}" if pairs else "n/a",
        f"{outcome.sql_seconds * 1000 / pairs:.1f}" if pairs else "n/a",
        f"{outcome.cpu_seconds / outcome.seconds:.0%}" if outcome.seconds else "n/a",
        str(sum(outcome.failures.values())),
    ]


def line(values: Sequence[str]) -> str:
    return "  ".join(value.rjust(width) for value, (_, width) in zip(values, COLUMNS, strict=True))


def print_outcome(outcome: Outcome) -> None:
    print(f"  {outcome.database}, {outcome.scenario.name}: {outcome.books}")
    if outcome.pairs:
        slowest = sorted(outcome.sql_by_kind.items(), key=lambda item: -item[1])[:4]
        shown = ", ".join(f"{k} {v * 1000 / outcome.pairs:.1f}" for k, v in slowest)
        print(f"    in SQL, ms per pair: {shown}", flush=True)
    for failure, times in outcome.failures.most_common(5):
        print(f"    failed {times}x: {failure}")


def print_table(outcomes: list[Outcome]) -> None:
    title = f"Money: hold-then-capture pairs (price {PRICE} credits, {UNITS} units, all captured)"
    print(f"\n{title}\n{'-' * len(title)}")
    print(line([name for name, _ in COLUMNS]))
    for outcome in outcomes:
        print(line(cells(outcome)))
    print()
    print(NOTES)


async def run(args: argparse.Namespace) -> int:
    map_entities()
    print(f"money_throughput: {args.pairs} timed pairs per scenario")
    outcomes: list[Outcome] = []
    if args.database in ("sqlite", "both"):
        outcomes += await run_sqlite(args.pairs)
    if args.database in ("postgresql", "both"):
        outcomes += await run_postgresql(args.pg_url, args.pairs)
    if outcomes:
        print_table(outcomes)
    if not all(outcome.books_ok for outcome in outcomes):
        print("\nThe books do not balance: see the lines above.")
        return 1
    return 0


def main() -> int:
    return asyncio.run(run(parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
