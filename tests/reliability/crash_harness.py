"""Crash-and-resume trials: kill a real `backfill run --execute` process, resume it, check.

A trial runs on its own copy of a prepared warehouse: an approved plan of fct_trips over
2024-01-10..2024-01-21 in three chunks of four days, after bronze corrections on two days
of every chunk (so each chunk changes at least two partitions and a half-published chunk
cannot pass for either the old or the new state). A trial is a list of phases; every phase
runs `backfill run PLAN --execute --json` through the CLI's entry point in a separate
process, and ends as its `Kill` says:

- `fault`: SIGKILL from `BACKFILL_FAULT=<point>@<n>` the n-th time a fault point is reached;
- `raise`: the same point raises instead (`:raise`), exercising the error path;
- `random`: SIGKILL sent by this process after a delay (a fraction of a calibrated run);
- `torn`: at `after_validate@n` the file-size limit (RLIMIT_FSIZE) is set just above the
  WAL's size with SIGXFSZ at its default action, so the publish transaction's commit is
  killed half-way through its WAL write (a torn commit);
- `diskfull`: the same limit with SIGXFSZ ignored, so the commit's write fails with EFBIG
  (what a full disk looks like to the process) and the process carries on.

After the listed phases a last phase resumes (no kill) and must succeed.

The process of a phase is, by default, forked from this long-lived one once the dbt
manifest is parsed and Great Expectations imported: it is a real, separate process that
dies by a real signal, but it does not pay the 5-8 s start-up. `fresh=True` starts a new
interpreter instead (`crash_child.py`), start-up included.

Readers: DuckDB lets no other process open the file while the writer holds it, so each
phase's process also runs the reader, through its own DuckDB connections to the same
database instance, which see exactly what another process would (committed data only):
a thread polling the plan's partitions and chunk states in one snapshot every few
milliseconds, and a read at every fault point (including inside the open publish
transaction). Observations go to a JSON-lines file written with O_APPEND, which survives
the kill.

After every phase this process opens the file read-only (replaying the WAL as a restart
would, without checkpointing it) and checks that data and audit store agree; after the
last, that the table equals a clean run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb

REPO = Path(__file__).resolve().parents[2]
CHILD_SCRIPT = Path(__file__).with_name("crash_child.py")
MODEL, RELATION, FIELD = "fct_trips", "marts.fct_trips", "trip_date"
PLAN_START, PLAN_END, CHUNK_DAYS = "2024-01-10", "2024-01-21", 4
CORRECTED_DAYS = (
    "2024-01-10",
    "2024-01-13",
    "2024-01-14",
    "2024-01-17",
    "2024-01-18",
    "2024-01-21",
)
TODAY = "2026-11-22"
PHASE_TIMEOUT = 240.0
POLL_SECONDS = 0.05
TORN_EXTRA_BYTES = 512  # how much of the publish commit reaches the WAL before the kill

Stats = dict[str, tuple[int, str]]  # ISO partition -> (rows, checksum)
How = Literal["fault", "raise", "random", "torn", "diskfull", "none"]


@dataclass(frozen=True)
class Kill:
    """How one phase ends."""

    how: How
    point: str = ""
    nth: int = 1
    at: float = 0.0  # `random`: the delay as a fraction of a calibrated duration, ...
    from_start: bool = False  # ... of the whole run (else of its chunks, from the first)
    fresh: bool = False  # a new interpreter instead of a fork (random: always from the chunks)

    @property
    def fault_spec(self) -> str:
        if self.how == "fault":
            return f"{self.point}@{self.nth}"
        if self.how == "raise":
            return f"{self.point}@{self.nth}:raise"
        return ""

    @property
    def _random_span(self) -> str:
        return "a run" if self.from_start and not self.fresh else "its chunks"

    @property
    def label(self) -> str:
        prefix = "fresh CLI, " if self.fresh else ""
        text = {
            "fault": f"SIGKILL at {self.point}@{self.nth}",
            "raise": f"exception at {self.point}@{self.nth}",
            "random": f"SIGKILL after {self.at:.0%} of {self._random_span}",
            "torn": f"SIGXFSZ in the publish commit of chunk {self.nth} (torn WAL)",
            "diskfull": f"EFBIG in the publish commit of chunk {self.nth} (disk full)",
            "none": "resume",
        }[self.how]
        return prefix + text


@dataclass(frozen=True)
class Trial:
    name: str
    phases: tuple[Kill, ...]  # a final resume follows

    @property
    def real_kills(self) -> int:
        return sum(k.how in {"fault", "random", "torn"} for k in self.phases)


@dataclass(frozen=True)
class Scenario:
    project_dir: Path  # the dbt project every command of the trials uses
    approved: Path  # the warehouse with the approved plan; every trial copies it
    backfill_id: str
    chunks: tuple[tuple[int, str, str], ...]  # (chunk_no, first day, last day)
    before: Stats  # the whole table before the backfill
    expected: Stats  # the whole table after a clean run
    run_seconds: float  # a forked clean run, start to exit
    chunk_seconds: float  # of which from the first chunk's start to exit


@dataclass
class Phase:
    kill: Kill
    returncode: int  # negative: killed by that signal
    seconds: float
    stdout: str
    stderr: str
    observations: list[dict[str, Any]]
    killed_by_us: bool = False
    started_at: float = 0.0  # wall clock (time.time()), comparable with the child's marks
    ended_at: float = 0.0

    @property
    def last_point(self) -> str | None:
        points = [o for o in self.observations if o["t"] == "point"]
        return f"{points[-1]['name']}@{points[-1]['n']}" if points else None

    @property
    def where(self) -> str:
        """Where the phase ended, for the coverage report."""
        if self.kill.how == "random":
            if self.returncode == 0:
                return "random: the run finished first"
            return f"random: after {self.last_point or 'start-up (before any chunk)'}"
        return self.kill.label


@dataclass
class TrialResult:
    trial: Trial
    phases: list[Phase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [f"trial {self.trial.name}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems[:20]]
        for i, phase in enumerate(self.phases):
            lines.append(
                f"  phase {i} ({phase.kill.label}): exit {phase.returncode} after "
                f"{phase.seconds:.1f}s, last point {phase.last_point}"
            )
            if phase.stderr.strip():
                lines.append("    stderr: " + phase.stderr.strip()[-1500:])
        return "\n".join(lines)


# --- the trial sets --------------------------------------------------------------------


def fault_points() -> tuple[str, ...]:
    from orchestrator.faults import POINTS

    return POINTS


def standard_trials(seed: int = 20261122, random_kills: int = 21) -> list[Trial]:
    """The set `make test` runs: every fault point at every chunk, and more (51 trials)."""
    rng = random.Random(seed)
    points = fault_points()
    trials = [Trial(f"kill-{p}@{n}", (Kill("fault", p, n),)) for p in points for n in (1, 2, 3)]
    trials += [Trial(f"raise-{p}@2", (Kill("raise", p, 2),)) for p in points]
    trials += [Trial(f"torn-commit@{n}", (Kill("torn", "after_validate", n),)) for n in (1, 2, 3)]
    trials += [
        Trial(
            "kill-twice-after_stage@2-inside_publish@1",
            (Kill("fault", "after_stage", 2), Kill("fault", "inside_publish", 1)),
        ),
        Trial(
            "kill-twice-inside_publish@1-random",
            (Kill("fault", "inside_publish", 1), Kill("random", at=0.6)),
        ),
    ]
    trials += [
        Trial(
            f"random-{i:02d}",
            (Kill("random", at=round(rng.uniform(0.0, 0.95), 3), from_start=i % 4 == 0),),
        )
        for i in range(random_kills)
    ]
    # A new interpreter, start-up included (tests/integration/test_resume.py kills three
    # more at fault points).
    trials.append(
        Trial("fresh-cli-random", (Kill("random", at=round(rng.uniform(0.1, 0.9), 3), fresh=True),))
    )
    return trials


def many_trials(count: int, seed: int, fresh_every: int = 0) -> list[Trial]:
    """`count` trials for the benchmark: the deterministic ones first, then random kills
    (every `fresh_every`-th in a new interpreter) and random double kills."""
    rng = random.Random(seed)
    points = fault_points()
    base = [t for t in standard_trials(seed, 0) if not any(k.fresh for k in t.phases)]
    trials = base[:count]
    while len(trials) < count:
        i = len(trials)
        fresh = bool(fresh_every) and i % fresh_every == 0
        at = round(rng.uniform(0.0, 0.95), 3)
        if i % 5 == 4:
            first = Kill("fault", rng.choice(points), rng.randint(1, 3))
            trials.append(Trial(f"double-{i:04d}", (first, Kill("random", at=at))))
        else:
            kill = Kill("random", at=at, from_start=not fresh and i % 4 == 1, fresh=fresh)
            trials.append(Trial(f"random-{i:04d}", (kill,)))
    return trials


# --- preparing the scenario ------------------------------------------------------------


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for a block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


PROJECT_FILES = (
    "dbt_project.yml",
    "profiles.yml.example",
    "models",
    "macros",
    "seeds",
    "snapshots",
    "tests/dbt",
)


def snapshot_project(target: Path) -> Path:
    """A copy of the dbt project, outside git.

    A plan's fingerprint covers the project files and the git commit, and other people
    edit and commit in the working tree while a suite runs: a plan approved against the
    working tree could turn stale between two phases of a trial. The copy is frozen for
    the session (its git commit reads "unknown").
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source, copy = REPO / name, target / name
        if source.is_dir():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
    return target


def prepare(template: Path, workdir: Path, project_dir: Path | None = None) -> Scenario:
    """Corrections, plan, dry run and approval on a copy of `template`, a clean reference
    run (which also imports Great Expectations into this process, for the forks), and one
    forked clean run to calibrate random kills and to check the harness itself."""
    from orchestrator import backfills
    from orchestrator.context import Context
    from tests.support import correct_a_fare

    workdir.mkdir(parents=True, exist_ok=True)
    project = project_dir or snapshot_project(workdir / "project")
    # Every warehouse file of the suite is called warehouse.duckdb (in its own directory):
    # DuckDB names the catalog after the file, dbt bakes that name into the manifest it
    # parses, and orchestrator.dbt reuses one parsed manifest per process and project.
    approved = workdir / "approved" / "warehouse.duckdb"
    approved.parent.mkdir(parents=True, exist_ok=True)
    copy_warehouse(template, approved)
    for day in CORRECTED_DAYS:
        correct_a_fare(approved, day)
    env = {
        "RIDESHARE_DUCKDB_PATH": str(approved),
        "BACKFILL_TODAY": TODAY,
        "OPENLINEAGE_DIR": str(workdir / "openlineage"),
        "BACKFILL_FAULT": None,
    }
    with environment(**env):
        ctx = Context(project)
        try:
            plan = backfills.create_plan(
                ctx,
                MODEL,
                PLAN_START,
                PLAN_END,
                chunk_days=CHUNK_DAYS,
                reason="crash trials",
                requested_by="alice",
            )
            backfills.dry_run(ctx, plan.backfill_id)
            backfills.approve(ctx, plan.backfill_id, "bob")
        finally:
            ctx.close()
    checkpoint(approved)
    before = table_stats(approved)

    reference = workdir / "reference" / "warehouse.duckdb"
    reference.parent.mkdir(parents=True, exist_ok=True)
    copy_warehouse(approved, reference)
    with environment(**{**env, "RIDESHARE_DUCKDB_PATH": str(reference)}):
        ctx = Context(project)
        try:
            backfills.run(ctx, plan.backfill_id, requested_by="carol")
        finally:
            ctx.close()
    expected = table_stats(reference)
    chunks = tuple((c.chunk_no, c.start.isoformat(), c.end.isoformat()) for c in plan.chunks)
    for chunk_no, first, last in chunks:
        changed = [d for d in days(first, last) if before.get(d) != expected.get(d)]
        if len(changed) < 2:
            raise RuntimeError(f"chunk {chunk_no} changes {changed}: too few to see a mix")

    draft = Scenario(project, approved, plan.backfill_id, chunks, before, expected, 60.0, 60.0)
    calibration = run_trial(draft, Trial("calibration", ()), workdir / "calibration")
    if calibration.problems:
        raise RuntimeError("the clean forked run failed:\n" + calibration.report())
    run = calibration.phases[-1]
    first_chunk = min(
        (o["ts"] for o in run.observations if o["t"] == "point"), default=run.started_at
    )
    return Scenario(
        project,
        approved,
        plan.backfill_id,
        chunks,
        before,
        expected,
        run_seconds=run.seconds,
        chunk_seconds=max(0.2, run.ended_at - first_chunk),
    )


def checkpoint(db: Path) -> None:
    """Fold the WAL into the file (so that the file alone can be copied)."""
    with duckdb.connect(str(db)) as con:
        con.execute("checkpoint")


def copy_warehouse(source: Path, target: Path) -> None:
    """Copy a checkpointed DuckDB file, removing any WAL left beside the target: DuckDB
    would replay a stale one onto the copy."""
    if Path(f"{source}.wal").exists():
        raise RuntimeError(f"{source} has a WAL: checkpoint it before copying")
    Path(f"{target}.wal").unlink(missing_ok=True)
    shutil.copyfile(source, target)


# --- running a trial -------------------------------------------------------------------


def run_trial(scenario: Scenario, trial: Trial, workdir: Path) -> TrialResult:
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "warehouse.duckdb"
    copy_warehouse(scenario.approved, db)
    result = TrialResult(trial)
    kills = (*trial.phases, Kill("none"))
    for index, kill in enumerate(kills):
        phase = run_phase(scenario, db, kill, workdir, index)
        result.phases.append(phase)
        tag = f"after phase {index} ({kill.label})"
        result.problems += [f"{tag}: {p}" for p in phase_problems(scenario, phase)]
        result.problems += [
            f"{tag}: {p}" for p in state_problems(scenario, db, final=kill.how == "none")
        ]
        if result.problems:
            break
    result.seconds = time.monotonic() - started
    return result


def run_phase(scenario: Scenario, db: Path, kill: Kill, workdir: Path, index: int) -> Phase:
    """One `backfill run --execute` process on `db`, ended as `kill` says."""
    out = workdir / f"phase{index}.jsonl"
    stdout_path, stderr_path = workdir / f"phase{index}.out", workdir / f"phase{index}.err"
    for path in (out, stdout_path, stderr_path):
        path.unlink(missing_ok=True)
    env = {
        "RIDESHARE_DUCKDB_PATH": str(db),
        "BACKFILL_TODAY": TODAY,
        "OPENLINEAGE_DIR": str(workdir / "openlineage"),
        "BACKFILL_FAULT": kill.fault_spec or None,
        "BACKFILL_DUCKDB_WAIT_SECONDS": "30",
    }
    spec = ChildSpec(
        str(scenario.project_dir), str(db), scenario.backfill_id, str(out), kill.how, kill.nth
    )
    started_at = time.time()
    started = time.monotonic()
    if kill.fresh:
        child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        with stdout_path.open("w") as so, stderr_path.open("w") as se:
            proc = subprocess.Popen(
                [sys.executable, str(CHILD_SCRIPT), json.dumps(spec.__dict__)],
                env=child_env,
                stdout=so,
                stderr=se,
            )
        poll: Callable[[], int | None] = proc.poll
        pid = proc.pid
    else:
        pid = fork_child(lambda: child_main(spec), env, stdout_path, stderr_path)
        poll = _waitpid_poller(pid)

    kill_at: float | None = None
    if kill.how == "random" and kill.from_start and not kill.fresh:
        kill_at = started + kill.at * scenario.run_seconds
    killed_by_us = False
    deadline = started + PHASE_TIMEOUT
    while True:
        code = poll()
        if code is not None:
            break
        now = time.monotonic()
        if kill.how == "random" and kill_at is None and _first_point_time(out) is not None:
            kill_at = now + kill.at * scenario.chunk_seconds  # counted from the first chunk
        if kill_at is not None and not killed_by_us and now >= kill_at:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed_by_us = True
        if now > deadline:
            os.kill(pid, signal.SIGKILL)
            while poll() is None:
                time.sleep(0.01)
            raise TimeoutError(f"phase {index} ({kill.label}) still running after {PHASE_TIMEOUT}s")
        time.sleep(0.005)
    return Phase(
        kill,
        code,
        time.monotonic() - started,
        _read(stdout_path),
        _read(stderr_path),
        _observations(out),
        killed_by_us,
        started_at,
        time.time(),
    )


def _waitpid_poller(pid: int) -> Callable[[], int | None]:
    def poll() -> int | None:
        done, status = os.waitpid(pid, os.WNOHANG)
        return os.waitstatus_to_exitcode(status) if done else None

    return poll


def fork_child(
    body: Callable[[], int], env: dict[str, str | None], stdout: Path, stderr: Path
) -> int:
    """Fork; the child sets `env`, sends its output to the two files, runs `body` and
    leaves with its exit code (never returning into this process's code, e.g. pytest)."""
    from orchestrator.dbt import Dbt

    Dbt(REPO).release_warehouse()  # no DuckDB instance of this process crosses the fork
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        os._exit(_in_child(body, env, stdout, stderr))
    return pid


def _in_child(
    body: Callable[[], int], env: dict[str, str | None], stdout: Path, stderr: Path
) -> int:
    code = 1
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for fd, path in ((1, stdout), (2, stderr)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        code = body()
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


# --- the child's side: the run, the reader and the file-size faults --------------------


@dataclass(frozen=True)
class ChildSpec:
    project_dir: str
    db: str
    backfill_id: str
    observations: str
    how: str
    nth: int


def child_main(spec: ChildSpec) -> int:
    """Run `backfill run PLAN --execute --json` with the reader attached; the exit code.

    An exception escaping the CLI is printed and exits 1, as the interpreter would."""
    from orchestrator import faults
    from orchestrator.cli import cli

    faults.reset()
    reader = Reader(Path(spec.db), Path(spec.observations), spec.backfill_id)
    reader.start()
    _hook_fault_points(reader, spec)
    argv = ["run", spec.backfill_id, "--execute", "--json", "--project-dir", spec.project_dir]
    try:
        cli.main(args=argv, prog_name="backfill")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


def _hook_fault_points(reader: Reader, spec: ChildSpec) -> None:
    """Read at every fault point (before the point may kill); arm the file-size faults."""
    import orchestrator.wap as wap

    original = wap.fault_point
    reached: Counter[str] = Counter()

    def hook(name: str) -> None:
        reached[name] += 1
        reader.at_point(name, reached[name])
        if spec.how in {"torn", "diskfull"} and (name, reached[name]) == (
            "after_validate",
            spec.nth,
        ):
            reader.stop()  # from here on only the WAL may grow past the limit
            limit_file_size(Path(spec.db), torn=spec.how == "torn")
        original(name)

    wap.fault_point = hook


def limit_file_size(db: Path, *, torn: bool) -> None:
    """Let no file grow past the WAL's current size (plus a little when `torn`).

    torn: SIGXFSZ at its default action kills the process on the first write past the
    limit, after a short write has put part of the commit into the WAL.
    Otherwise SIGXFSZ is ignored (Python's default) and the write fails with EFBIG, which
    is how a full disk looks to the process (root ignores file modes, so a read-only file
    would not stop it)."""
    wal = Path(f"{db}.wal")
    size = wal.stat().st_size if wal.exists() else 0
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL if torn else signal.SIG_IGN)
    limit = size + TORN_EXTRA_BYTES if torn else max(size, 1)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


class Reader:
    """A concurrent reader inside the writing process, on its own DuckDB connections."""

    def __init__(self, db: Path, out: Path, backfill_id: str) -> None:
        self.db, self.backfill_id = str(db), backfill_id
        self.fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.start_date, self.end_date = (
            date.fromisoformat(PLAN_START),
            date.fromisoformat(PLAN_END),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="reader", daemon=True)
        self._point_con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._closed = True

    def at_point(self, name: str, n: int) -> None:
        if self._stop.is_set():
            return
        self.write({"t": "point", "name": name, "n": n, "ts": time.time()})
        try:
            if self._point_con is None:
                self._point_con = duckdb.connect(self.db)
            self._read(self._point_con, f"{name}@{n}")
        except Exception as exc:  # reported by the checks, never a failure of the run itself
            self.write({"t": "error", "src": name, "msg": " ".join(str(exc).split())})

    def _poll(self) -> None:
        con = duckdb.connect(self.db)
        while not self._stop.wait(POLL_SECONDS):
            try:
                self._read(con, "poll")
            except Exception as exc:
                self.write({"t": "error", "src": "poll", "msg": " ".join(str(exc).split())})

    def _read(self, con: duckdb.DuckDBPyConnection, source: str) -> None:
        from orchestrator.warehouse.duckdb import partition_stats

        con.execute("begin transaction")  # data and audit rows from one snapshot
        try:
            stats = partition_stats(con, RELATION, FIELD, self.start_date, self.end_date)
            states = chunk_states(con, self.backfill_id)
        finally:
            con.execute("commit")
        parts = {d.isoformat(): [s.rows, s.checksum] for d, s in stats.items()}
        self.write({"t": "read", "src": source, "parts": parts, "states": states})

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            os.write(self.fd, (json.dumps(record) + "\n").encode())


# --- checks ----------------------------------------------------------------------------


def phase_problems(scenario: Scenario, phase: Phase) -> list[str]:
    """The phase ended as its kill says, and no reader ever saw a half-published chunk."""
    problems: list[str] = []
    kill, code = phase.kill, phase.returncode
    expected_code = {
        "fault": -signal.SIGKILL,
        "raise": 1,
        "torn": -signal.SIGXFSZ,
        "none": 0,
    }.get(kill.how)
    if kill.how == "random":
        if code not in (0, -signal.SIGKILL):
            problems.append(f"exit {code}, expected SIGKILL or a finished run")
    elif kill.how == "diskfull":
        if code == 0:
            problems.append("the run succeeded although its publish could not be written")
    elif code != expected_code:
        problems.append(f"exit {code}, expected {expected_code}")
    if kill.how == "raise" and code == 1:
        error = (
            f"Error: backfill {scenario.backfill_id} failed: InjectedFault: "
            f"injected fault at {kill.point}\n"
        )
        if phase.stderr != error:
            problems.append(f"stderr {phase.stderr!r}, expected {error!r}")
    if kill.how == "none" and code == 0:
        report = json.loads(phase.stdout)
        if report["status"] != "succeeded":
            problems.append(f"resume reported {report['status']}")
    reads = 0
    for record in phase.observations:
        if record["t"] == "error":
            problems.append(f"the reader failed: {record['msg']}")
        elif record["t"] == "read":
            reads += 1
            actual = {d: (int(v[0]), str(v[1])) for d, v in record["parts"].items()}
            states = {int(k): v for k, v in record["states"].items()}
            for p in consistency_problems(scenario, actual, states):
                problems.append(f"a reader ({record['src']}) saw {p}")
    ran = kill.how == "none" and code == 0 and json.loads(phase.stdout)["chunks_run"]
    if ran and reads == 0:
        problems.append("the reader observed nothing while chunks were published")
    return problems[:20]


def consistency_problems(scenario: Scenario, actual: Stats, states: dict[int, str]) -> list[str]:
    """Every chunk's partitions are all old or all new, and new exactly when published."""
    problems = []
    for chunk_no, first, last in scenario.chunks:
        data = classify(scenario, actual, first, last)
        state = states.get(chunk_no)
        if data == "mixed":
            problems.append(
                f"chunk {chunk_no} half-published: "
                + ", ".join(f"{d}={_which(scenario, actual, d)}" for d in days(first, last))
            )
        elif (data == "new") != (state == "published"):
            problems.append(f"chunk {chunk_no} data {data} but its audit state is {state}")
    return problems


def classify(scenario: Scenario, actual: Stats, first: str, last: str) -> str:
    span = days(first, last)
    if all(actual.get(d) == scenario.before.get(d) for d in span):
        return "old"
    if all(actual.get(d) == scenario.expected.get(d) for d in span):
        return "new"
    return "mixed"


def _which(scenario: Scenario, actual: Stats, day: str) -> str:
    value = actual.get(day)
    if value == scenario.expected.get(day) == scenario.before.get(day):
        return "same"
    if value == scenario.expected.get(day):
        return "new"
    if value == scenario.before.get(day):
        return "old"
    return f"neither{value}"


def state_problems(scenario: Scenario, db: Path, *, final: bool) -> list[str]:
    """What a restart would find in the file: data and audit store agree (and, when
    `final`, the backfill succeeded and the table equals the clean run's)."""
    problems: list[str] = []
    backfill_id = scenario.backfill_id
    with duckdb.connect(str(db), read_only=True) as con:
        actual = _stats(con)
        states = chunk_states(con, backfill_id)
        problems += consistency_problems(scenario, actual, states)
        outside = {d: v for d, v in actual.items() if not PLAN_START <= d <= PLAN_END}
        if outside != {d: v for d, v in scenario.before.items() if not PLAN_START <= d <= PLAN_END}:
            problems.append("partitions outside the plan's range changed")
        duplicates = _one(con, f"select count(*) - count(distinct trip_id) from {RELATION}")
        if duplicates:
            problems.append(f"{duplicates} duplicate trip_id rows")
        published_rows = dict(
            con.execute(
                "select chunk_no, count(*) from backfill_audit.backfill_chunks "
                "where backfill_id = $id and state = 'published' group by 1",
                {"id": backfill_id},
            ).fetchall()
        )
        twice = {c: n for c, n in published_rows.items() if n != 1}
        if twice:
            problems.append(f"chunks recorded as published more than once: {twice}")
        published = {c for c, s in states.items() if s == "published"}
        published_days = {
            d for c, first, last in scenario.chunks if c in published for d in days(first, last)
        }
        after = {
            str(r[0]): (int(r[1]), str(r[2]))
            for r in con.execute(
                "select partition_date, row_count, checksum "
                "from backfill_audit.partition_checksums where backfill_id = $id "
                "and phase = 'after' qualify row_number() over "
                "(partition by partition_date order by recorded_at desc) = 1",
                {"id": backfill_id},
            ).fetchall()
        }
        in_data = {d: v for d, v in actual.items() if d in published_days}
        if after != in_data:
            wrong = sorted(d for d in set(after) | set(in_data) if after.get(d) != in_data.get(d))
            problems.append(f"partition_checksums 'after' disagree with the data on {wrong}")
        deltas = Counter(
            str(r[0])
            for r in con.execute(
                "select d.partition_date from backfill_audit.dataset_deltas d "
                "join backfill_audit.dataset_versions v using (version_id) "
                "where v.created_by_backfill = $id",
                {"id": backfill_id},
            ).fetchall()
        )
        if set(deltas) != published_days or any(n != 1 for n in deltas.values()):
            problems.append(f"version deltas {dict(deltas)} do not match the published days")
        lineage = _one(
            con,
            "select count(*) from backfill_audit.lineage where backfill_id = $id",
            {"id": backfill_id},
        )
        if lineage != len(published):
            problems.append(f"{lineage} lineage rows for {len(published)} published chunks")
        if final:
            status = con.execute(
                "select status, rows_affected from backfill_audit.backfill_log "
                "where backfill_id = $id order by event_no desc limit 1",
                {"id": backfill_id},
            ).fetchall()
            if status != [("succeeded", sum(r for d, (r, _) in in_data.items()))]:
                problems.append(f"latest status {status}, expected succeeded with its rows")
            if actual != scenario.expected:
                changed = sorted(
                    d
                    for d in set(actual) | set(scenario.expected)
                    if actual.get(d) != scenario.expected.get(d)
                )
                problems.append(f"partitions differ from the clean run: {changed}")
            locks = _one(con, "select count(*) from backfill_audit.locks")
            if locks:
                problems.append(f"{locks} lock(s) left after the backfill succeeded")
    return problems


def chunk_states(con: duckdb.DuckDBPyConnection, backfill_id: str) -> dict[int, str]:
    """Latest state per chunk, as `AuditStore.chunk_states` orders them."""
    rows = con.execute(
        "select chunk_no, state from backfill_audit.backfill_chunks where backfill_id = $id "
        "qualify row_number() over (partition by model, chunk_no order by updated_at desc) = 1",
        {"id": backfill_id},
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


def table_stats(db: Path) -> Stats:
    with duckdb.connect(str(db), read_only=True) as con:
        return _stats(con)


def _stats(con: duckdb.DuckDBPyConnection) -> Stats:
    from orchestrator.warehouse.duckdb import partition_stats

    return {
        d.isoformat(): (s.rows, s.checksum)
        for d, s in partition_stats(con, RELATION, FIELD).items()
    }


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> int:
    row = con.execute(sql, params or {}).fetchone()
    return int(row[0]) if row else 0


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _observations(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in _read(path).splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by the kill
            records.append(json.loads(line))
    return records


def _first_point_time(path: Path) -> float | None:
    return next((o["ts"] for o in _observations(path) if o["t"] == "point"), None)


# --- summaries -------------------------------------------------------------------------


def coverage(results: list[TrialResult]) -> Counter[str]:
    """How many trials ended a phase at each place."""
    return Counter(p.where for r in results for p in r.phases if p.kill.how != "none")


def build_template(path: Path, days: int = 40, trips_per_day: int = 200) -> Path:
    """The warehouse `tests/conftest.py` builds (bronze, `dbt build`), for the benchmark."""
    from orchestrator.dbt import Dbt
    from orchestrator.demo.generate import generate_bronze
    from orchestrator.warehouse.duckdb import connect

    path.parent.mkdir(parents=True, exist_ok=True)
    with environment(RIDESHARE_DUCKDB_PATH=str(path)):
        with connect(path) as con:
            generate_bronze(
                con, days=days, trips_per_day=trips_per_day, seed=7, start_date=date(2024, 1, 1)
            )
        dbt = Dbt(REPO)
        dbt.invoke(["build", "--exclude-resource-type", "unit_test"])
        dbt.release_warehouse()
        with connect(path) as con:
            con.execute("checkpoint")
    return path
