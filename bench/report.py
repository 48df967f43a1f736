"""Render bench/results/latest.json as docs/benchmarks.md, with PNG plots in docs/benchmarks/.

`bench/run.sh` calls this at the end of a run; `bench/run.sh --render-only
bench/results/latest.json` renders saved results again without measuring.
Only measured numbers appear: a missing scenario or database is left out, and a
missing environment (a run with `--envs ours`) shows as n/a. matplotlib is imported
only to draw the plots.
"""

from __future__ import annotations

import statistics
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"

NAMES = {"ours": "this package", "orig": "0.7.0", "sqlalchemy": "SQLAlchemyJobStore", "memory": "MemoryJobStore"}
LONG_NAMES = {
    "ours": "this package (1.0.0.dev0)",
    "orig": "django-apscheduler 0.7.0",
    "sqlalchemy": "APScheduler's SQLAlchemyJobStore",
    "memory": "APScheduler's MemoryJobStore (the floor)",
}
DB_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB"}
COLORS = {"ours": "#2b7bba", "orig": "#d95f02", "sqlalchemy": "#7f7f7f", "memory": "#1b9e77"}
MET, MISSED = "#2ca02c", "#d62728"  # the floor plot's verdicts
POLL_INTERVAL = 2.0  # APSCHEDULER_POLL_INTERVAL's default, which the benchmark keeps


# --- reading results ----------------------------------------------------------------------


def runs(results: dict, scenario: str, db: str, env: str) -> list[dict]:
    return results["scenarios"].get(scenario, {}).get(db, {}).get(env, [])


def measured_envs(results: dict) -> list[str]:
    """The environments the run was asked to measure (results from before --envs: all three)."""
    envs = results["settings"].get("envs") or list(NAMES)
    if results["settings"].get("no_reference"):
        envs = [env for env in envs if env != "sqlalchemy"]
    return envs


def dig(run: dict, path: str):
    value = run
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def med(items: list[dict], path: str, only_ok: bool = False) -> float | None:
    values = [dig(r, path) for r in items if not only_ok or r.get("status", "ok") == "ok"]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def dbs_of(results: dict, scenario: str) -> list[str]:
    order = ["sqlite", "postgres", "mariadb"]
    return [db for db in order if db in results["scenarios"].get(scenario, {})]


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def ratio(ours: float | None, orig: float | None) -> str:
    if ours is None or orig is None:
        return "n/a"
    if orig == 0:
        return "n/a (0.7.0: 0)" if ours else "equal (0)"
    return f"{ours / orig:.2f}×"


def failures(items: list[dict]) -> str:
    """'crashed in 1/3 runs (error)' for runs that did not complete, else ''."""
    bad = [r for r in items if r.get("status", "ok") != "ok"]
    if not bad:
        return ""
    first = bad[0]
    what = first.get("status")
    if "fires" in first and "n" in first:
        what += f" after {first['fires']:,} of {first['n']:,} fires"
    elif "executed" in first:
        what += f" after {first['executed']:,} of {first['expected']:,} fires"
    if len(items) > 1:
        what += f" ({len(bad)}/{len(items)} runs)"
    if first.get("error"):
        what += f": `{first['error']}`"
    return what


# --- plots --------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_burst(results: dict, plots: Path) -> str | None:
    dbs = dbs_of(results, "burst")
    if not dbs:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    envs = [env for env in ("memory", "ours", "orig", "sqlalchemy") if any(runs(results, "burst", db, env) for db in dbs)]
    width = min(0.35, 0.8 / max(len(envs), 1))
    top = 0.0
    for i, env in enumerate(envs):
        xs, fps, sql = [], [], []
        for j, db in enumerate(dbs):
            items = runs(results, "burst", db, env)
            if not items:
                continue
            xs.append(j + (i - (len(envs) - 1) / 2) * width)
            fps.append(med(items, "fires_per_s") or 0)
            sql.append(med(items, "sql.statements") or 0)
            if failures(items):
                ax1.text(xs[-1], fps[-1], "crashed" if "crashed" in failures(items) else "incomplete",
                         ha="center", va="bottom", fontsize=8, rotation=90)
        top = max([top] + fps)
        ax1.bar(xs, fps, width, label=LONG_NAMES[env], color=COLORS[env])
        ax2.bar(xs, sql, width, label=LONG_NAMES[env], color=COLORS[env])
    n = results["settings"]["burst_jobs"]
    for ax, title in ((ax1, f"Burst of {n:,} date jobs: fires per second (higher is better)"),
                      (ax2, "SQL statements per fire (lower is better)")):
        ax.set_xticks(range(len(dbs)), [DB_NAMES[db] for db in dbs])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    ax1.set_ylim(0, max(top, 1) * 1.45)  # room for the legend above the tallest bar
    ax1.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = plots / "burst.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_lag(results: dict, plots: Path) -> str | None:
    dbs = dbs_of(results, "lag")
    if not dbs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(dbs), figsize=(5.5 * len(dbs), 4), squeeze=False)
    for ax, db in zip(axes[0], dbs, strict=True):
        for env in ("memory", "ours", "sqlalchemy", "orig"):
            lags = sorted(x for r in runs(results, "lag", db, env) for x in r.get("lags_ms", []))
            if not lags:
                continue
            ys = [(i + 1) / len(lags) for i in range(len(lags))]
            bad = [r for r in runs(results, "lag", db, env) if r.get("status", "ok") != "ok"]
            label = LONG_NAMES[env] + (f" ({bad[0]['status']}: {bad[0]['executed']} of {bad[0]['expected']} fires ran)"
                                       if bad else "")
            ax.plot([max(x, 0.1) for x in lags], ys, label=label, color=COLORS[env])
        ax.axvline(50, color="black", linestyle=":", linewidth=1)
        ax.text(50, 1.02, " 50 ms target", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("lag: actual start − scheduled time (ms, log scale)")
        ax.set_ylabel("fraction of fires")
        s = results["settings"]
        ax.set_title(f"{DB_NAMES[db]}: {s['lag_jobs']} interval jobs every 1 s, {s['lag_duration']} s", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = plots / "lag.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_bars(results: dict, plots: Path, scenario: str, path_of: dict, title: str, filename: str,
              dbs=None) -> str | None:
    dbs = dbs or dbs_of(results, scenario)
    if not dbs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(path_of), figsize=(5.5 * len(path_of), 3.8), squeeze=False)
    for ax, (label, path) in zip(axes[0], path_of.items(), strict=True):
        top = 0.0
        for i, env in enumerate(("ours", "orig")):
            xs, ys = [], []
            for j, db in enumerate(dbs):
                items = runs(results, scenario, db, env)
                if items:
                    xs.append(j + (i - 0.5) * 0.38)
                    ys.append(med(items, path) or 0)
            ax.bar(xs, ys, 0.38, label=LONG_NAMES[env], color=COLORS[env])
            top = max([top] + ys)
            for x, y in zip(xs, ys, strict=True):
                ax.text(x, y, fmt(y, 0 if float(y).is_integer() else 2), ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max(top * 1.2, 1))
        ax.set_xticks(range(len(dbs)), [DB_NAMES[db] for db in dbs])
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = plots / filename
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plot_floor(results: dict, plots: Path) -> str | None:
    """Each floor target as the measured ratio beside its bound: green where met, red where missed."""
    judged = {db: floor_targets(results, db) for db in ("sqlite", "postgres", "mariadb")}
    dbs = [db for db, targets in judged.items() if targets]
    if not dbs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(dbs), figsize=(5.8 * len(dbs), 3.6), squeeze=False)
    for ax, db in zip(axes[0], dbs, strict=True):
        targets = judged[db]
        ys = range(len(targets))
        ax.barh(ys, [t["ratio"] for t in targets], 0.6, color=[MET if t["met"] else MISSED for t in targets])
        for y, t in zip(ys, targets, strict=True):
            ax.plot([t["bound"]] * 2, [y - 0.4, y + 0.4], color="black", linewidth=2)
        # The measured ratio goes with the label: beside the bar it would cross the target's line.
        ax.set_yticks(list(ys), [f"{t['label']} ({t['wording']}): {t['ratio']:.2f}" for t in targets], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max([2.4] + [max(t["ratio"], t["bound"]) + 0.4 for t in targets]))
        ax.set_title(DB_NAMES[db], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("The issue's targets: ratio to the floor (APScheduler's MemoryJobStore in-process), or to the "
                 "absolute rate\ngreen: met, red: missed, black bar: the target", fontsize=10)
    fig.tight_layout()
    path = plots / "floor.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# --- sections -----------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def memory(text: str) -> str:
    parts = text.split()
    if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
        return f"{int(parts[0]) / 1024 ** 2:.1f} GiB"
    return text


def machine_section(results: dict) -> str:
    m = results["meta"]
    v = m["versions"]
    rows = [
        ["CPU", f"{m['cpu']} ({m['nproc']} cores available)"],
        ["memory", memory(m["memory"])],
        ["kernel", m["kernel"]],
        ["load average (1, 5, 15 min) at start / end",
         " / ".join(", ".join(f"{x:.2f}" for x in la) for la in (m["load_average_start"], m.get("load_average_end", [])))],
        ["Python", v["ours"]["python"]],
        ["this package", (f"{v['ours']['django-apscheduler']} (Django {v['ours']['Django']}, "
                         f"APScheduler {v['ours']['APScheduler']}, psycopg {v['ours']['psycopg']})")],
    ]
    envs = measured_envs(results)
    if "orig" in envs and v.get("orig"):
        rows.append(["original", (f"django-apscheduler {v['orig']['django-apscheduler']} (Django {v['orig']['Django']}, "
                                 f"APScheduler {v['orig']['APScheduler']}, psycopg {v['orig']['psycopg']}, "
                                 f"SQLAlchemy {v['orig']['SQLAlchemy']})")])
    elif "sqlalchemy" in envs and v.get("orig"):
        rows.append(["reference store", f"SQLAlchemy {v['orig']['SQLAlchemy']} (APScheduler {v['orig']['APScheduler']})"])
    if "orig" not in envs:
        rows.append(["original", "not measured in this run"])
    rows.append(["SQLite", v["ours"]["sqlite"]])
    rows += [[name, version] for name, version in m["databases"].items()]
    rows.append(["run", f"{m['date']}, {m.get('elapsed_s', 0) / 60:.1f} minutes"])
    return table(["", ""], rows)


def burst_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "burst")
    if not dbs:
        return "", []
    s = results["settings"]
    out = [f"### Burst: {s['burst_jobs']:,} date jobs due at the same instant\n",
           ("The jobs are stored before the scheduler starts (bulk insert), all due at one instant a few "
           "seconds later. Fires per second = fires ÷ (last execution − due instant); SQL statements are "
           "counted in the scheduler process from the due instant to "
           f"{s['settle']:g} s after the last execution (so the results of the last fires are included).\n")]
    summary = []
    for db in dbs:
        rows = []
        base = {env: runs(results, "burst", db, env) for env in ("ours", "orig", "sqlalchemy")}
        for env, items in base.items():
            if not items:
                continue
            rows.append([
                LONG_NAMES[env],
                fmt(med(items, "fires_per_s", only_ok=True), 0) if not failures(items) else
                f"did not finish: {failures(items)}",
                fmt(med(items, "first_fire_ms"), 0, "ms"),
                fmt(med(items, "elapsed_s"), 2, "s"),
                fmt(med(items, "sql.statements"), 2),
                fmt(med(items, "sql.extras"), 2),
                "—" if env == "ours" else ratio(med(base["ours"], "fires_per_s", True),
                                                    med(items, "fires_per_s", True)) if not failures(items) else "n/a",
            ])
        out.append(f"**{DB_NAMES[db]}**\n")
        out.append(table(["store", "fires/s", "first fire after", "all ran after", "SQL statements per fire",
                          "+ commits/pings per fire", "this package's fires/s ÷ this row's"], rows))
        out.append("")
        out.append(sql_breakdown(base))
        out.append("")
        timeline = dig(base["ours"][0], "loop_timeline") if base["ours"] else None
        if timeline:
            out.append("<details><summary>This package: what the scheduler loop thread did after the due "
                       "instant (first run; ms after the instant)</summary>\n")
            out.append(table(["ms", "statement"], [[f"{ms:.1f}", f"`{kind}`"] for ms, kind in timeline]))
            out.append("\n</details>\n")
        summary.append([f"burst fires/s, {DB_NAMES[db]} (higher is better)",
                        fmt(med(base["ours"], "fires_per_s", True), 0),
                        fmt(med(base["orig"], "fires_per_s", True), 0) if not failures(base["orig"])
                        else failures(base["orig"]),
                        ratio(med(base["ours"], "fires_per_s", True), med(base["orig"], "fires_per_s", True))
                        if not failures(base["orig"]) else "n/a"])
        summary.append([f"burst SQL statements per fire, {DB_NAMES[db]}",
                        fmt(med(base["ours"], "sql.statements"), 2), fmt(med(base["orig"], "sql.statements"), 2),
                        ratio(med(base["ours"], "sql.statements"), med(base["orig"], "sql.statements"))])
    return "\n".join(out), summary


def sql_breakdown(base: dict) -> str:
    """Statements per fire by thread and kind, one column per store."""
    envs = [env for env in ("ours", "orig", "sqlalchemy") if base.get(env)]
    kinds: dict[str, dict[str, float]] = {}
    for env in envs:
        first = base[env][0]
        for kind, value in (dig(first, "sql.by_kind") or {}).items():
            kinds.setdefault(kind, {})[env] = value
        for kind, value in (dig(first, "sql.extras_by_kind") or {}).items():
            kinds.setdefault(kind + " (round trip, not a statement)", {})[env] = value
    ordered = sorted(kinds.items(), key=lambda kv: -max(kv[1].values()))
    rows = [[f"`{kind}`"] + [fmt(per.get(env), 3) if per.get(env) else "" for env in envs]
            for kind, per in ordered if max(per.values()) >= 0.005]
    return ("<details><summary>Statements per fire by thread and kind (first run)</summary>\n\n"
            + table(["thread: statement"] + [NAMES[e] for e in envs], rows) + "\n\n</details>")


def lag_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "lag")
    if not dbs:
        return "", []
    s = results["settings"]
    out = [(f"### Lag: {s['lag_jobs']} interval jobs every second for {s['lag_duration']} s "
           f"({s['lag_jobs']} fires/s)\n"),
           ("Each job is added with `add_job(..., replace_existing=True)` before `start()`, all with the same "
           "first fire a few seconds ahead. Lag = the moment the job function starts − its scheduled time "
           "(the i-th execution of a job belongs to its i-th fire). Percentiles are over all fires.\n")]
    summary = []
    for db in dbs:
        rows = []
        for env in ("ours", "orig"):
            items = runs(results, "lag", db, env)
            if not items:
                continue
            rows.append([LONG_NAMES[env], fmt(med(items, "min_ms")), fmt(med(items, "p50_ms")),
                         fmt(med(items, "p99_ms")), fmt(med(items, "max_ms")),
                         f"{int(med(items, 'executed'))} / {int(med(items, 'expected'))}",
                         fmt(med(items, "sql.statements"), 2), fmt(med(items, "sql.extras"), 2),
                         f"{fmt(med(items, 'loop_first_statement_ms'))} / {fmt(med(items, 'loop_first_commit_ms'))}",
                         failures(items) or "ok"])
        out.append(f"**{DB_NAMES[db]}**\n")
        out.append(table(["", "min (ms)", "p50 (ms)", "p99 (ms)", "max (ms)", "fires run / due",
                          "SQL statements per fire", "+ commits/pings per fire",
                          "scheduler loop: first statement / first commit after each fire instant (ms, median)",
                          "outcome"], rows))
        out.append("")
        ours, orig = runs(results, "lag", db, "ours"), runs(results, "lag", db, "orig")
        out.append(sql_breakdown({"ours": ours, "orig": orig}))
        out.append("")
        for metric in ("p50_ms", "p99_ms"):
            summary.append([f"lag {metric[:3]}, {DB_NAMES[db]} (ms, lower is better)", fmt(med(ours, metric)),
                            fmt(med(orig, metric)) + (f" ({failures(orig)})" if failures(orig) else ""),
                            "n/a" if failures(orig) else ratio(med(ours, metric), med(orig, metric))])
    return "\n".join(out), summary


def idle_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "idle")
    if not dbs:
        return "", []
    s = results["settings"]
    out = [f"### Idle: {s['idle_jobs']} jobs due next week, {s['idle_duration']:g} s\n",
           ("All idle schedulers run at the same time (each on its own database). The window starts 3 s after "
           "start-up. CPU = user + system seconds of the scheduler process in the window (from /proc). "
           "0.7.0 sends nothing while idle because its scheduler sleeps until the next due job without "
           "looking at the database, which is also why it does not notice changes made by other processes "
           "(see *Live change*). This package's idle scheduler sends one statement per poll interval: a poll of "
           "the jobs table (one indexed SELECT) or, every 5 s instead, its heartbeat: an UPDATE that is "
           "written only if no job is due sooner than planned and no dead peer left unfinished fires (only "
           "then does it look closer). On PostgreSQL, where notifications announce every change, it sends "
           "only the heartbeats. (On MySQL and MariaDB, whose UPDATEs lock the rows their subqueries read, "
           "the heartbeat is a plain UPDATE followed by a poll, and dead peers' fires are looked for every "
           "15 s.)\n")]
    summary = []
    rows = []
    for db in dbs:
        for env in ("ours", "orig"):
            items = runs(results, "idle", db, env)
            if not items:
                continue
            by_kind = dig(items[0], "sql_per_min.by_kind") or {}
            extras = dig(items[0], "sql_per_min.extras_by_kind") or {}
            detail = ", ".join(f"{v:.1f} `{k}`" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]))
            if extras:
                detail += "; round trips: " + ", ".join(
                    f"{v:.1f} `{k}`" for k, v in sorted(extras.items(), key=lambda kv: -kv[1]))
            rows.append([DB_NAMES[db], LONG_NAMES[env], fmt(med(items, "sql_per_min.statements")),
                         fmt(med(items, "sql_per_min.extras")), fmt(med(items, "cpu_s"), 2),
                         detail or "none"])
        ours, orig = runs(results, "idle", db, "ours"), runs(results, "idle", db, "orig")
        summary.append([f"idle SQL statements per minute, {DB_NAMES[db]}", fmt(med(ours, "sql_per_min.statements")),
                        fmt(med(orig, "sql_per_min.statements")),
                        ratio(med(ours, "sql_per_min.statements"), med(orig, "sql_per_min.statements"))])
        summary.append([f"idle CPU seconds in {s['idle_duration']:g} s, {DB_NAMES[db]}", fmt(med(ours, "cpu_s"), 2),
                        fmt(med(orig, "cpu_s"), 2), ratio(med(ours, "cpu_s"), med(orig, "cpu_s"))])
    out.append(table(["database", "", "SQL statements / min", "+ commits/pings / min", "CPU s in window",
                      "statements / min by thread and kind (first run)"], rows))
    return "\n".join(out), summary


def startup_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "startup")
    if not dbs:
        return "", []
    s = results["settings"]
    out = [f"### Start-up with {s['startup_jobs']:,} stored jobs\n",
           ("The jobs (weekly, due next week) are bulk-inserted first; then the scheduler process starts with "
           "one more date job due at once (added before `start()`). Times are from spawning the process: "
           "*ready* when `start()` returned, *first fire* when that job ran. Peak memory is the process's "
           "peak resident set size (`VmHWM`). The same with an empty database is given for comparison.\n")]
    rows, summary = [], []
    for db in dbs:
        for env in ("ours", "orig"):
            items = runs(results, "startup", db, env)
            if not items:
                continue
            rows.append([DB_NAMES[db], LONG_NAMES[env],
                         fmt(med(items, "empty.first_fire_s"), 2), fmt(med(items, "full.ready_s"), 2),
                         fmt(med(items, "full.first_fire_s"), 2), fmt(med(items, "empty.maxrss_mb"), 1),
                         fmt(med(items, "full.maxrss_mb"), 1)])
        ours, orig = runs(results, "startup", db, "ours"), runs(results, "startup", db, "orig")
        summary.append([f"start-up to first fire with {s['startup_jobs']:,} jobs, {DB_NAMES[db]} (s)",
                        fmt(med(ours, "full.first_fire_s"), 2), fmt(med(orig, "full.first_fire_s"), 2),
                        ratio(med(ours, "full.first_fire_s"), med(orig, "full.first_fire_s"))])
        summary.append([f"peak memory with {s['startup_jobs']:,} jobs, {DB_NAMES[db]} (MiB)",
                        fmt(med(ours, "full.maxrss_mb"), 1), fmt(med(orig, "full.maxrss_mb"), 1),
                        ratio(med(ours, "full.maxrss_mb"), med(orig, "full.maxrss_mb"))])
    out.append(table(["database", "", "first fire, empty (s)", f"ready, {s['startup_jobs']:,} jobs (s)",
                      f"first fire, {s['startup_jobs']:,} jobs (s)", "peak RSS, empty (MiB)",
                      f"peak RSS, {s['startup_jobs']:,} jobs (MiB)"], rows))
    return "\n".join(out), summary


def live_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "live")
    if not dbs:
        return "", []
    s = results["settings"]
    out = ["### Live change: another process reschedules a job\n",
           (f"A scheduler runs with {s['idle_jobs']} jobs due next week. Another process (a paused scheduler "
           "on the same job store, so the change goes through APScheduler's API and each package's own "
           "`update_job`) calls `modify_job(job_id, next_run_time=now)`. Latency = the job's start in the "
           f"running scheduler − the moment `modify_job` returned; {s['live_changes']} changes, one after "
           f"the other, each given {s['live_timeout']:g} s.\n")]
    rows, summary = [], []
    for db in dbs:
        for env in ("ours", "orig"):
            items = runs(results, "live", db, env)
            if not items:
                continue
            lat = [x for r in items for x in r.get("latencies_ms", [])]
            obeyed = sum(r.get("obeyed", 0) for r in items)
            tried = sum(r.get("tried", 0) for r in items)
            rows.append([DB_NAMES[db], LONG_NAMES[env], f"{obeyed} / {tried}",
                         fmt(med(items, "median_ms"), 0, "ms") if obeyed else
                         f"not obeyed within {s['live_timeout']:g} s",
                         ", ".join("—" if x is None else f"{x:.0f}" for x in lat)])
        ours, orig = runs(results, "live", db, "ours"), runs(results, "live", db, "orig")
        summary.append([f"live change latency, {DB_NAMES[db]} (ms)", fmt(med(ours, "median_ms"), 0),
                        "n/a" if not orig else fmt(med(orig, "median_ms"), 0) if med(orig, "median_ms") is not None
                        else f"not obeyed within {s['live_timeout']:g} s", "n/a" if med(orig, "median_ms") is None
                        else ratio(med(ours, "median_ms"), med(orig, "median_ms"))])
    out.append(table(["database", "", "changes obeyed", "median latency", "each change (ms; — = not obeyed)"], rows))
    return "\n".join(out), summary


def multi_section(results: dict) -> tuple[str, list[list[str]]]:
    dbs = dbs_of(results, "multi")
    if not dbs:
        return "", []
    s = results["settings"]
    out = [(f"### Several schedulers: {s['multi_schedulers']} processes, {s['multi_jobs']} jobs every second, "
           f"{s['multi_duration']} s\n"),
           (f"{s['multi_schedulers']} scheduler processes share one database; each adds the same "
           f"{s['multi_jobs']} interval jobs with `replace_existing=True`, as users do in each worker or host. "
           "Every real execution is appended to one shared file; an execution belongs to the fire of the "
           "second it started in (lags stay well under a second here). Duplicates = executions − distinct "
           "fires run; misses = fires due − distinct fires run.\n")]
    rows, summary = [], []
    for db in dbs:
        for env in ("ours", "orig"):
            items = runs(results, "multi", db, env)
            if not items:
                continue
            first = items[0]
            rows.append([DB_NAMES[db], LONG_NAMES[env], fmt(med(items, "expected"), 0),
                         fmt(med(items, "executions"), 0), fmt(med(items, "duplicates"), 0),
                         fmt(med(items, "misses"), 0), ", ".join(str(x) for x in first.get("per_process", [])),
                         "; ".join(first.get("errors") or []) or "none"])
        ours, orig = runs(results, "multi", db, "ours"), runs(results, "multi", db, "orig")
        summary.append([f"{s['multi_schedulers']} schedulers, {DB_NAMES[db]}: duplicates / misses",
                        f"{fmt(med(ours, 'duplicates'), 0)} / {fmt(med(ours, 'misses'), 0)}",
                        f"{fmt(med(orig, 'duplicates'), 0)} / {fmt(med(orig, 'misses'), 0)}", "n/a"])
    out.append(table(["database", "", "fires due", "executions", "duplicates", "misses",
                      "executions per process", "errors logged (first run)"], rows))
    return "\n".join(out), summary


# Peak memory "does not grow with the stored jobs" when 100,000 of them add less than
# this: a database driver's bounded page cache (SQLite's is 2 MiB by default) is
# not growth, one Python object per job (hundreds of bytes each) would be tens of MiB.
MEMORY_GROWTH_LIMIT_MB = 5.0


def idle_breakdown(results: dict, db: str) -> str:
    """What an idle scheduler's statements per minute are: polls, heartbeats, lost-fire checks."""
    by_kind = med_kinds(runs(results, "idle", db, "ours"))
    names = {"SELECT djangojob": "polls", "UPDATE schedulerinstance": "heartbeats",
             "UPDATE djangojobexecution": "lost-fire checks"}
    parts = [f"{value:.0f} {names.get(kind.split(': ', 1)[-1], kind)}"
             for kind, value in sorted(by_kind.items(), key=lambda item: -item[1])]
    return ", ".join(parts) or "none"


def med_kinds(items: list[dict]) -> dict[str, float]:
    """Per statement kind, the median over runs of statements per minute."""
    kinds = {kind for r in items for kind in r.get("sql_per_min", {}).get("by_kind", {})}
    return {kind: statistics.median(r["sql_per_min"]["by_kind"].get(kind, 0) for r in items) for kind in kinds}


def targets_section(results: dict) -> str:
    """The issue's targets, each with what was measured and whether it holds."""
    s = results["settings"]
    rows = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**holds**" if ok else "**does not hold**")

    for db in dbs_of(results, "burst"):
        ours = med(runs(results, "burst", db, "ours"), "fires_per_s", True)
        orig_runs = runs(results, "burst", db, "orig")
        orig = med(orig_runs, "fires_per_s", True)
        ref = med(runs(results, "burst", db, "sqlalchemy"), "fires_per_s", True)
        if ours is None:
            continue
        if failures(orig_runs):
            text = f"{fmt(ours, 0)} fires/s; 0.7.0 {failures(orig_runs)}"
            ok5 = None
        elif not orig:
            text = f"{fmt(ours, 0)} fires/s; 0.7.0 not measured"
            ok5 = None
        else:
            text = f"{fmt(ours, 0)} vs {fmt(orig, 0)} fires/s = {ours / orig:.2f}× (needs 5×)"
            ok5 = ours >= 5 * orig
        if ref:
            text += f"; SQLAlchemyJobStore {fmt(ref, 0)} fires/s ({ours / ref:.2f}×)"
        ok = None if ok5 is None and not ref else ((ok5 is not False) and (ref is None or ours > ref))
        if ok5 is None and ref:
            text += "; the 5× part cannot be judged here"
        rows.append([f"burst ≥ 5× the original and ahead of SQLAlchemyJobStore ({DB_NAMES[db]})", text, verdict(ok)])
    for db in dbs_of(results, "burst"):
        value = med(runs(results, "burst", db, "ours"), "sql.statements")
        extras = med(runs(results, "burst", db, "ours"), "sql.extras")
        steady = med(runs(results, "lag", db, "ours"), "sql.statements")
        if value is None:
            continue
        text = f"burst: {value:.2f} statements per fire (+{extras:.2f} commits/pings)"
        ok = value <= 3
        if steady is not None:
            text += f"; {s['lag_jobs']} jobs/s steady: {steady:.2f}"
            ok = ok and steady <= 3
        rows.append([f"≤ 3 SQL statements per fire, amortized ({DB_NAMES[db]})", text, verdict(ok)])
    for db in dbs_of(results, "lag"):
        p99 = med(runs(results, "lag", db, "ours"), "p99_ms")
        if p99 is None:
            continue
        rows.append([f"lag p99 ≤ 50 ms at {s['lag_jobs']} fires/s ({DB_NAMES[db]})",
                     f"p99 {p99:.1f} ms (p50 {med(runs(results, 'lag', db, 'ours'), 'p50_ms'):.1f} ms)"
                     + ("" if p99 <= 50 else f": {p99 / 50:.1f}× the target"), verdict(p99 <= 50)])
    for db in dbs_of(results, "idle"):
        per_min = med(runs(results, "idle", db, "ours"), "sql_per_min.statements")
        if per_min is None:
            continue
        allowed = 60 / POLL_INTERVAL
        rows.append([f"idle ≤ 1 cheap query per poll interval ({DB_NAMES[db]})",
                     f"{per_min:.1f} statements/min ({idle_breakdown(results, db)}); the {POLL_INTERVAL:g} s poll "
                     f"interval allows {allowed:.0f}/min"
                     + ("" if per_min <= allowed else f": {per_min / allowed:.1f}× the target"),
                     verdict(per_min <= allowed)])
    for db in dbs_of(results, "startup"):
        t = med(runs(results, "startup", db, "ours"), "full.first_fire_s")
        if t is None:
            continue
        rows.append([f"start-up ≤ 2 s with {s['startup_jobs']:,} jobs ({DB_NAMES[db]})",
                     f"{t:.2f} s to the first fire", verdict(t <= 2 and s["startup_jobs"] >= 100_000)
                     if s["startup_jobs"] >= 100_000 else f"n/a (measured with {s['startup_jobs']:,} jobs)"])
        empty = med(runs(results, "startup", db, "ours"), "empty.maxrss_mb")
        full = med(runs(results, "startup", db, "ours"), "full.maxrss_mb")
        if empty and full:
            growth = full - empty
            rows.append([f"peak memory does not grow with the number of stored jobs ({DB_NAMES[db]})",
                         f"{empty:.1f} MiB with no jobs, {full:.1f} MiB with {s['startup_jobs']:,} "
                         f"({growth:+.1f} MiB, {growth / empty:+.1%}; judged as growing from "
                         f"+{MEMORY_GROWTH_LIMIT_MB:g} MiB)",
                         verdict(growth < MEMORY_GROWTH_LIMIT_MB)])
    for db in dbs_of(results, "multi"):
        items = runs(results, "multi", db, "ours")
        if not items:
            continue
        dup, miss = max(r.get("duplicates", 1) for r in items), max(r.get("misses", 1) for r in items)
        rows.append([f"{s['multi_schedulers']} schedulers: 0 duplicates, 0 misses ({DB_NAMES[db]})",
                     f"{dup} duplicates, {miss} misses (worst run)", verdict(dup == 0 and miss == 0)])
    for db in dbs_of(results, "live"):
        value = med(runs(results, "live", db, "ours"), "median_ms")
        limit = 1000 if db == "postgres" else POLL_INTERVAL * 1000
        if value is None:
            continue
        rows.append([(f"README: changes obeyed within {'a second' if db == 'postgres' else 'the poll interval'} "
                     f"({DB_NAMES[db]})"), f"median {value:.0f} ms", verdict(value <= limit)])
    return table(["target", "measured (this package)", "verdict"], rows)


def draw_plots(results: dict, plots: Path) -> dict[str, str | None]:
    """Draw every plot into ``plots``; the file name of each (None where nothing was measured)."""
    plots.mkdir(parents=True, exist_ok=True)
    s = results["settings"]
    return {
        "floor": plot_floor(results, plots),
        "burst": plot_burst(results, plots),
        "lag": plot_lag(results, plots),
        "idle": plot_bars(results, plots, "idle", {"SQL statements per minute": "sql_per_min.statements",
                                                   "CPU seconds in the window": "cpu_s"},
                          "Idle scheduler, jobs due next week (lower is better)", "idle.png"),
        "multi": plot_bars(results, plots, "multi", {"duplicate executions": "duplicates", "missed fires": "misses"},
                           f"{s['multi_schedulers']} schedulers on one database (lower is better)", "multi.png"),
        "startup": plot_bars(results, plots, "startup", {"seconds to the first fire": "full.first_fire_s",
                                                         "peak RSS (MiB)": "full.maxrss_mb"},
                             f"Start-up with {s['startup_jobs']:,} stored jobs (lower is better)", "startup.png"),
    }


HANDOFF_NAMES = {"inproc": "in-process (thread pool)", "tasks": "Django tasks (django-tasks-db)",
                 "celery": "Celery (Redis broker)"}
HANDOFF_TARGET = 1_000  # fires/s handed off on PostgreSQL: the "the hand-off is not the bottleneck"


def handoff_section(results: dict) -> str:
    """The ``## Hand-off`` section: per database and executor, the burst's hand-off rate and the lag."""
    if "handoff" not in results["scenarios"]:
        return ""
    s = results["settings"]
    out = [f"""## Hand-off to a worker fleet

Fires handed to workers (`executors.tasks` and `executors.celery`; docs/scaling-out.md)
beside the scheduler's own thread pool, in the same run:

- **burst**: {s['burst_jobs']:,} date jobs due at one instant, one scheduler; for a hand-off
  executor no worker runs, so this is the rate at which the scheduler claims the fires,
  records them Queued and the broker accepts the messages (the in-process row is the
  burst above: claimed and run). Target: ≥ {HANDOFF_TARGET:,} fires/s handed off on PostgreSQL.
  Beside it, the broker client's own rate at that moment: Celery's `send_task` of the
  same message in a loop, without database or scheduler (`scheduler_proc.py sendrate`),
  the ceiling any hand-off through that client has on this machine.
- **lag**: {s['lag_jobs']} interval jobs every second for {s['lag_duration']} s, scheduled time → the
  job's first line running; for a hand-off executor, on one of {s.get('handoff_workers', 2)} worker
  processes (Celery: one worker with a prefork pool of that many; Django tasks: that many
  `db_worker` processes polling every 0.05 s), so it includes the queue's round trip and
  the worker's taking of the fire (a row update) before the job starts.

Measured {results['meta'].get('date', '')} with `{results['command']}` on {results['meta'].get('nproc')} cores, load
average {_load(results['meta'].get('load_average_start'))} at the start and {_load(results['meta'].get('load_average_end'))} at the end:
the scheduler, the workers, Redis and the database share those cores, and other test
suites ran on the machine at the same time, so read the rows as ratios within one run
rather than as absolute capacities.
"""]
    for db in ("sqlite", "postgres", "mariadb"):
        items = runs(results, "handoff", db, "ours")
        if not items:
            continue
        backends = [b for b in HANDOFF_NAMES if any(b in r.get("backends", {}) for r in items)]
        base_rate = med([r["backends"].get("inproc", {}).get("burst", {}) for r in items], "fires_per_s", True)
        rows = []
        for backend in backends:
            bursts = [r["backends"][backend]["burst"] for r in items if backend in r.get("backends", {})]
            lags = [r["backends"][backend]["lag"] for r in items if backend in r.get("backends", {})]
            rate = med(bursts, "fires_per_s", True)
            verdict = ""
            if backend != "inproc" and db == "postgres" and rate is not None:
                verdict = (f"target ≥ {HANDOFF_TARGET:,}/s: "
                           + ("met" if rate >= HANDOFF_TARGET else f"missed ({rate / HANDOFF_TARGET:.2f} of it)"))
            ceiling = med(bursts, "send_ceiling_per_s")
            behind = [lg for lg in lags if lg.get("status") != "ok"]
            notes = [failures(bursts), verdict]
            if behind:
                notes.append(f"the workers fell behind: {behind[0]['executed']:,} of {behind[0]['expected']:,} "
                             "fires started by the end of the run; the lag is the age of their backlog")
            rows.append([
                HANDOFF_NAMES[backend], fmt(rate, 0), _to_floor(rate, base_rate),
                "" if backend == "inproc" or ceiling is None else f"{fmt(ceiling, 0)} ({_to_floor(rate, ceiling)})",
                fmt(med(lags, "p50_ms"), 1), fmt(med(lags, "p99_ms"), 1),
                f"{sum(b.get('duplicates') or 0 for b in bursts)} / {sum(lg.get('missing') or 0 for lg in lags)}",
                "; ".join(n for n in notes if n),
            ])
        header = ["executor", "burst: fires/s handed off (in-process: run)", "÷ in-process",
                  "broker client alone, messages/s (hand-off ÷ it)", "lag p50, ms",
                  "lag p99, ms", "duplicates / fires not started in the run", "notes"]
        out.append(f"### {DB_NAMES[db]}\n\n{table(header, rows)}")
    out.append("""How to read it:

- A hand-off burst shares the in-process executor's claim path (one claim transaction
  per batch of fires, which also writes them Queued) and adds one message per fire:
  Celery's `send_task`, a round trip to Redis (its rate alone is the ceiling column), or
  for Django tasks one row inserted into the database backend's table. On a loaded
  machine both are bound by round trips whose other end (Redis, the database) waits for
  a core; compare the rows with each other and with the ceiling, not across runs.
- Where the notes say the workers fell behind, the bottleneck was the fleet, not the
  hand-off: each fire costs a worker its bookkeeping (taking the fire, loading and
  verifying the stored job, the outcome, the lease) besides the job, and the worker
  processes shared the same 2 cores with the scheduler and the database. The lag is then
  the age of the backlog: more worker processes, or less loaded ones, bring it down;
  a faster hand-off would not.""")
    return "\n\n".join(out) + "\n"


def _load(average) -> str:
    return "n/a" if not average else "/".join(f"{x:.1f}" for x in average)


# Hand-written parts of the page, each between ``<!-- name:start -->`` and ``<!-- name:end -->``,
# kept as they are when the page is rendered again:
# - "floor-notes": where the time goes and why a target is missed, written from the run
#   they name (profiles cannot be rendered from a results file);
# - "handoff": the hand-off section, replaced by a run that measures the hand-off and
#   kept by one that does not;
# - "handoff-notes": earlier hand-off runs and their findings, below that section;
# - "million": the one-million-jobs section (bench/million.py, its own run).
HAND_WRITTEN_BLOCKS = ("floor-notes", "handoff", "handoff-notes", "million")
HANDOFF_HEADING = "## Hand-off to a worker fleet"


def kept_blocks(text: str) -> dict[str, str]:
    """Each of ``HAND_WRITTEN_BLOCKS`` found in ``text``, markers included; the hand-off section of a
    page from before the markers, found by its heading, as the "handoff" block.

    A marker without its pair, or a block twice, is an error: rendering on would lose the text.
    """
    blocks = {}
    for name in HAND_WRITTEN_BLOCKS:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        starts, ends = text.count(start), text.count(end)
        if (starts, ends) == (0, 0):
            continue
        if (starts, ends) != (1, 1) or text.index(end) < text.index(start):
            raise ValueError(f"docs/benchmarks.md: {start} and {end} must appear once each, in this order "
                             f"(found {starts} and {ends}); fix the page by hand before rendering it again")
        blocks[name] = text[text.index(start) : text.index(end) + len(end)]
    if "handoff" not in blocks and HANDOFF_HEADING in text:
        start = text.index(HANDOFF_HEADING)
        end = text.find("\n## ", start + 1)
        blocks["handoff"] = text[start : end + 1 if end >= 0 else len(text)].rstrip("\n")
    return blocks


def _wrap_in_markers(name: str, body: str) -> str:
    return f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->\n"


def _handoff_blocks(results: dict, kept: dict[str, str]) -> str:
    """This run's hand-off section if it measured the hand-off, else the page's earlier one; then the notes."""
    section = handoff_section(results)
    if section:
        current = _wrap_in_markers("handoff", section)
    else:  # kept, in markers from now on (a page from before them had none)
        old = kept.get("handoff", "")
        current = old if not old or old.startswith("<!-- handoff:start -->") else _wrap_in_markers("handoff", old)
    notes = kept.get("handoff-notes", "")
    return "\n".join(part.rstrip() + "\n" for part in (current, notes) if part)


def splice_handoff(results: dict, doc: Path = DOC) -> None:
    """Put this run's hand-off section into the page, leaving the rest of it as the last full run wrote it."""
    block = _wrap_in_markers("handoff", handoff_section(results))
    text = doc.read_text() if doc.exists() else ""
    old = kept_blocks(text).get("handoff")
    if old is not None:
        text = text.replace(old + "\n", block, 1) if old + "\n" in text else text.replace(old, block, 1)
    else:
        at = text.find("## How it is measured")
        text = text[:at] + block + "\n" + text[at:] if at >= 0 else text + "\n" + block
    doc.write_text(text)


def render(results: dict, doc: Path = DOC, plots: bool = True) -> None:
    """Write the page to ``doc`` and its plots to the folder of the same name beside it.

    ``plots=False`` writes the page without plots (and without matplotlib).
    """
    kept = kept_blocks(doc.read_text() if doc.exists() else "")  # first: a broken page changes nothing
    folder = doc.with_suffix("")
    drawn = draw_plots(results, folder) if plots else {}
    links = {name: f"![{name}]({folder.name}/{file})" for name, file in drawn.items() if file}
    doc.write_text(markdown(results, links, kept))


def scope_note(results: dict) -> str:
    """What this run left out of the comparison, if anything."""
    envs = measured_envs(results)
    left_out = [env for env in NAMES if env not in envs and (env != "sqlalchemy" or "burst" in results["scenarios"])]
    if not left_out:
        return ""
    note = (f"\n**This run measured only {' and '.join(LONG_NAMES[e] for e in envs)}** (`--envs {','.join(envs)}`)"
            if "orig" not in envs or "ours" not in envs else
            f"\nThis run left out {' and '.join(LONG_NAMES[e] for e in left_out)}")
    if "orig" not in envs or "ours" not in envs:
        note += ": the ratios are n/a"
        if "orig" not in envs:
            note += ", and so is the 0.7.0 column"
    return note + ".\n"


def not_measured(results: dict) -> str:
    s = results["settings"]
    items = [
        ("- Statement timings per phase (claim transaction vs. history writes) inside the scheduler;\n"
        "  only counts and wall-clock effects are measured."),
        ("- The multi-scheduler scenario on SQLite, and the burst on MariaDB (both possible with\n"
        "  `--multi-dbs sqlite` / `--dbs mariadb`, left out of the default run for time)."),
    ]
    short = [f"{name} ran {s[key]} s" for name, key in (("lag", "lag_duration"), ("several schedulers", "multi_duration"))
             if s.get(key, 30) < 30]
    if short:
        items.append(f"- The issue's 30 s: in this run {' and '.join(short)} "
                     "(`--lag-duration 30 --multi-duration 30`, the defaults, give the full setting).")
    if s.get("burst_jobs", 10_000) < 10_000:
        items.append(f"- The issue's burst of 10,000 jobs: this run used {s['burst_jobs']:,} (`--burst-jobs`).")
    items.append("- Crash recovery (a scheduler killed with `kill -9`) and database outages.")
    return "\n".join(items)


# (scenario, value path, label, higher is better, the target as a ratio to the floor or
# an absolute rate, its wording)
FLOOR_ROWS = (
    ("addrate", "add_job_per_s", "add_job through the store, jobs/s", True, ("abs", 2_000), "≥ 2,000/s"),
    ("addrate", "bulk_per_s", "bulk.add_jobs, jobs/s", True, ("abs", 10_000), "≥ 10,000/s"),
    ("burst", "fires_per_s", "burst fires/s", True, ("floor", 0.5), "≥ 0.5 × floor"),
    ("lag", "p50_ms", "lag p50, ms", False, ("floor", 2.0), "≤ 2 × floor"),
    ("lag", "p99_ms", "lag p99, ms", False, ("floor", 1.2), "≤ 1.2 × floor"),
    ("lag", "min_ms", "lag min, ms", False, None, ""),
)
FLOOR_ENVS = ("memory", "ours", "sqlalchemy", "orig")
COMPARED_TO_FLOOR = ("ours", "sqlalchemy", "orig")  # the table's columns after the floor's own


def _to_floor(value: float | None, floor: float | None) -> str:
    return "n/a" if value is None or not floor else f"{value / floor:.2f}×"


def _floor_values(results: dict, db: str, scenario: str, path: str) -> dict[str, float | None]:
    return {env: med(runs(results, scenario, db, env), path, True) for env in FLOOR_ENVS}


def _judge(values: dict[str, float | None], higher: bool, target: tuple[str, float]) -> dict | None:
    """This package's value against one target: the ratio compared (to the floor, or to the absolute
    bound, where 1 is the bound), that bound, and whether it is met; None where it cannot be judged.

    Every absolute target is a rate to reach (``≥``), so ``higher`` matters only for ratios to the floor.
    """
    ours, floor = values["ours"], values["memory"]
    kind, bound = target
    if ours is None:
        return None
    if kind == "abs":
        return {"ratio": ours / bound, "bound": 1.0, "met": ours >= bound, "absolute": True}
    if not floor:
        return None
    ratio = ours / floor
    return {"ratio": ratio, "bound": bound, "met": ratio >= bound if higher else ratio <= bound, "absolute": False}


def floor_targets(results: dict, db: str) -> list[dict]:
    """The issue's floor targets that this run can judge on ``db``, each with its label and wording."""
    judged = []
    for scenario, path, label, higher, target, wording in FLOOR_ROWS:
        if target is None:
            continue
        verdict = _judge(_floor_values(results, db, scenario, path), higher, target)
        if verdict is not None:
            short = label.split(",")[0] + (" ÷ target" if verdict["absolute"] else " ÷ floor")
            judged.append({"label": short, "wording": wording, **verdict})
    return judged


def floor_section(results: dict) -> str:
    """Each floor scenario as a ratio to APScheduler's MemoryJobStore in the same run."""
    out = []
    for db in ("sqlite", "postgres", "mariadb"):
        rows = []
        for scenario, path, label, higher, target, wording in FLOOR_ROWS:
            values = _floor_values(results, db, scenario, path)
            if all(v is None for v in values.values()):
                continue
            floor = values["memory"]
            judged = _judge(values, higher, target) if target else None
            if judged is None:
                verdict = "n/a"
            elif judged["met"]:
                verdict = "met"
            else:
                verdict = f"missed ({judged['ratio']:.2f} of it)" if judged["absolute"] else f"missed ({judged['ratio']:.2f}×)"
            row = [label, fmt(floor, 1)]
            for env in COMPARED_TO_FLOOR:
                row += [fmt(values[env], 1), _to_floor(values[env], floor)]
            rows.append(row + [f"{wording}: {verdict}" if wording else ""])
        if rows:
            header = ["measurement", "floor", "this package", "÷ floor", "SQLAlchemyJobStore", "÷ floor",
                      "0.7.0", "÷ floor", "target"]
            out.append(f"### {DB_NAMES[db]}\n\n{table(header, rows)}")
    if not out:
        return "The floor was not measured in this run (`--envs` without `memory`)."
    return "\n\n".join(out)


def markdown(results: dict, images: dict[str, str] | None = None, kept: dict[str, str] | None = None) -> str:
    """The whole page, given the plots' image links by name and the hand-written blocks to keep (``kept_blocks``)."""
    images, kept = images or {}, kept or {}
    floor_plot = images.get("floor", "")
    scenario_plots = "\n\n".join(link for name, link in images.items() if name != "floor")
    s = results["settings"]
    sections, summary = [], []
    for builder in (burst_section, lag_section, idle_section, startup_section, live_section, multi_section):
        text, rows = builder(results)
        if text:
            sections.append(text)
            summary += rows
    repeat = s["repeat"]
    return f"""# Benchmarks

This package against the original [django-apscheduler 0.7.0](https://pypi.org/project/django-apscheduler/0.7.0/)
from PyPI, measured side by side in one run on the same machine, with real scheduler
processes started the way users run them (a `BackgroundScheduler` with `DjangoJobStore`,
jobs added with `replace_existing=True`, Django's and the package's default settings).
Two references run beside them in the add rate, the burst and the lag: APScheduler's
own `SQLAlchemyJobStore`, and the floor, its `MemoryJobStore` in the same process.

```bash
bench/run.sh             # builds bench/.venvs/{{ours,orig}} on first use, then runs everything once
bench/run.sh --repeat 3  # the same, three times over, for medians
bench/run.sh --quick     # a few minutes while developing: the floor's scenarios and the hand-off, small
```

This run took {results['meta'].get('elapsed_s', 0) / 60:.1f} minutes on this 2-core machine for {repeat} repetition{'s' if repeat != 1 else ''} of
{', '.join(f'`{name}`' for name in results['scenarios'])}.

The numbers below come from `{results['command']}`. Each figure is the median of
**{repeat} run{'s' if repeat != 1 else ''}** per measurement{' (so it is a single run: treat small differences as noise)' if repeat == 1 else ''}; ratios are
this package ÷ 0.7.0. Raw results: `bench/results/latest.json`;
`bench/run.sh --render-only bench/results/latest.json` renders this page again.
`bench/run.sh --help` lists the options (`--repeat 3`, `--scenarios burst,lag`,
`--envs ours`, `--profile DIR`, ...).
{scope_note(results)}
## Machine

{machine_section(results)}

The machine is shared: another engineer's test suites may run at the same time (see the
load averages), so timings carry noise; counts (SQL statements, duplicates, misses) do not.

## Summary

{table(["measurement", "this package", "0.7.0", "ratio"], summary)}

## The floor: APScheduler's MemoryJobStore in-process

The same scenarios with APScheduler 3's own `MemoryJobStore` in one process (no database,
no history, no cluster): the cost of scheduling itself on this machine. Every figure
beside it is also shown as a ratio to it (for rates, higher is better; for lags, lower);
the add rates' targets are absolute.

{floor_section(results)}

{floor_plot}

{kept.get('floor-notes', '')}

## Targets from the issue

The issue sets its targets for this package on PostgreSQL with one scheduler (unless a
target says otherwise); the SQLite and MariaDB rows are measured the same way.

{targets_section(results)}

## Scenarios

{(chr(10) * 2).join(sections)}

{scenario_plots}

{_handoff_blocks(results, kept)}
## How it is measured

- Two virtual environments (same import name `django_apscheduler`): `bench/.venvs/ours`
  (this checkout, editable) and `bench/.venvs/orig` (django-apscheduler 0.7.0 from PyPI,
  with SQLAlchemy for the reference store). `bench/harness.py` runs in the first and starts
  every scheduler process with the right interpreter: `bench/scheduler_proc.py`, one script
  for both packages. For 0.7.0 it also calls `register_events(scheduler)`, as older quick
  starts did; in 0.7.0 that is a deprecated no-op (its job store registers its history
  listeners on start), so it changes nothing measured.
- Every run gets a fresh database: a copy of a migrated template (PostgreSQL `CREATE DATABASE
  … TEMPLATE`, a copied SQLite file), MariaDB migrated per run; all are dropped at the end.
- Jobs call one function that appends `job id, pid, time` to a shared file with one
  `O_APPEND` write: that file, not either package's history table, says what really ran and when.
- SQL statements are counted inside each scheduler process with a
  `connection.execute_wrappers` entry installed on every thread's connection (Django's
  `connection_created` signal); SQLAlchemy's `before_cursor_execute` event for the reference.
  That counts what goes through a cursor, including `SAVEPOINT`s and SQLite's `BEGIN`.
  Commits, rollbacks and Django's connection pings (`is_usable`) are counted separately as
  round trips; PostgreSQL/MariaDB's implicit `BEGIN` and this package's LISTEN connection
  (one `LISTEN`, then waiting) are not counted.
- The statistics are written when the process receives SIGTERM, before it shuts down, so
  shutdown work is not counted; the windows are given per scenario above.
- Jobs use `misfire_grace_time` 3600 s in the burst (so a slow store's late fires still
  run and count) and 30 s elsewhere.

## Not measured yet

{not_measured(results)}
""" + ("\n" + kept["million"] + "\n" if "million" in kept else "")
