"""The end-of-run summary: printed for a person, written as JSON for tools.

The JSON (``--summary PATH``, default ``<data_dir>/crawl-summary.json``)::

    {
      "version": 1,
      "status": "finished" | "interrupted" | "incomplete" | "failed",
      "exit_code": 0 | 130 | 5 | 1,  # 5: every lookup failed (see sozy.crawl --help)
      "started_at": "...Z", "finished_at": "...Z",
      "duration_s": 12.3,           # crawling, after startup_s spent opening the store and engine
      "startup_s": 3.1,
      "shard": "2/8" | null, "sources": ["names:config/names.txt", ...],
      "run": {                      # this run only
        "discovered": N, "resumed": N, "new": N,   # queued = resumed (from earlier runs) + new
        "fetched": N, "fetched_bytes": N, "embedded": N,
        "faces_found": N, "faces_stored": N, "photos_done": N,
        "failed": N, "skipped": N,
        "failed_by_reason": {"http_404": 3, ...}, "skipped_by_reason": {"robots_txt": 2, ...},
        "people": N,                # distinct people (person_id) of the faces stored
        "labels": {"rejected": N, "attached": N},   # consensus: claims that failed, unnamed faces attached
        "units_done": N, "units_failed_by_reason": {...},
        "lookups": {"done": N, "failed": N, "not_tried": N}   # names, image search, top people
      },
      "sources_down": {"name": {"host": "...", "reason": "connection", "error": "...", "failures": 8}},
      "rates": {"<stage>": {"count": N, "per_s": x, "active_s": x}},   # discovered, fetched, embedded, stored
      "state": {                    # every URL the state file knows, all runs together
        "pending": N, "done": N, "failed": N, "skipped": N,
        "failed_by_reason": {...}, "skipped_by_reason": {...},
        "units": {"name": {"done": N, "failed": N, "pending": N}, ...}
      },
      "store": {"faces": N, "people": N, "backend": "...", "collection": "..."} | null,
      "engine": {"workers": N, "device": "cpu", "model": "..."} | null,
      "nodes": {"10.0.0.7/3f2a9c": {"photos": N, "faces": N, "failed": N}, ...} | null,   # --ray: per node
      "discovery": {"url_list_bad_lines": N, "page_failed_http_404": N, "other_shard": N, ...},
      "fetch": {"image": N, "page": N, "retries": N, "robots_txt": N, ...}   # the fetcher's counters
    }
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sozy.records import utc_now

from .stats import STAGES, CrawlStats

SUMMARY_VERSION = 1
# Discovery units that are lookups (names, image search, top people), as the pipeline names them.
LOOKUP_KINDS = frozenset({"name", "search", "top"})


def build_summary(
    stats: CrawlStats,
    *,
    status: str,
    exit_code: int,
    started_at: str,
    state_counts: Mapping[str, Counter[str]] | None = None,
    unit_counts: Mapping[str, Mapping[str, int]] | None = None,
    store: Mapping[str, Any] | None = None,
    engine: Mapping[str, Any] | None = None,
    shard: str | None = None,
    sources: Sequence[str] = (),
    discovery: Mapping[str, int] | None = None,
    fetch: Mapping[str, int] | None = None,
    startup_s: float = 0.0,
    lookups: Mapping[str, int] | None = None,
    sources_down: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The summary as a JSON-ready dict (see the module docstring)."""
    duration = stats.elapsed
    run = {
        "discovered": stats.discovered,
        "resumed": stats.resumed,
        "new": stats.discovered - stats.resumed,
        "fetched": stats.fetched,
        "fetched_bytes": stats.fetched_bytes,
        "embedded": stats.embedded,
        "faces_found": stats.faces_found,
        "faces_stored": stats.stored,
        "photos_done": stats.done,
        "failed": sum(stats.failed.values()),
        "skipped": sum(stats.skipped.values()),
        "failed_by_reason": _sorted(stats.failed),
        "skipped_by_reason": _sorted(stats.skipped),
        "people": len(stats.people),
        "labels": {"rejected": stats.relabelled["rejected"], "attached": stats.relabelled["attached"]},
        "units_done": stats.units_done,
        "units_failed_by_reason": _sorted(stats.units_failed),
        "lookups": _sorted(lookups or {}),
    }
    rates = {
        stage: {
            "count": getattr(stats, stage),
            "per_s": round(getattr(stats, stage) / duration, 3) if duration > 0 else 0.0,
            "active_s": round(stats.stage_seconds(stage), 3),
        }
        for stage in STAGES
    }
    state: dict[str, Any] | None = None
    if state_counts is not None:
        state = {status_: sum(c.values()) for status_, c in state_counts.items()}
        state["failed_by_reason"] = _sorted(state_counts.get("failed", Counter()))
        state["skipped_by_reason"] = _sorted(state_counts.get("skipped", Counter()))
        state["units"] = {k: dict(v) for k, v in sorted((unit_counts or {}).items())}
    return {
        "version": SUMMARY_VERSION,
        "status": status,
        "exit_code": exit_code,
        "started_at": started_at,
        "finished_at": utc_now(),
        "duration_s": round(duration, 3),
        "startup_s": round(startup_s, 3),
        "shard": shard,
        "sources": list(sources),
        "run": run,
        "sources_down": {k: dict(v) for k, v in (sources_down or {}).items()},
        "rates": rates,
        "state": state,
        "store": dict(store) if store is not None else None,
        "engine": dict(engine) if engine is not None else None,
        "nodes": {name: dict(sorted(c.items())) for name, c in sorted(stats.nodes.items())} or None,
        "discovery": _sorted(discovery or {}),
        "fetch": _sorted(fetch or {}),
    }


def write_summary(path: str | os.PathLike[str], summary: Mapping[str, Any]) -> Path:
    """Write the JSON next to its final name and rename it, so readers never see half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few readable lines for the terminal."""
    run = summary["run"]
    lines = [
        f"Crawl {summary['status']} in {_duration(summary['duration_s'])}"
        + (f" (shard {summary['shard']})" if summary.get("shard") else ""),
        f"  photos: {run['discovered']} queued ({_queued(run)}), {run['fetched']} fetched, "
        f"{run['photos_done']} done, {run['skipped']} skipped, {run['failed']} failed",
        f"  faces:  {run['faces_found']} found, {run['faces_stored']} stored, {run['people']} named people",
    ]
    labels = run.get("labels") or {}
    if labels.get("rejected") or labels.get("attached"):
        lines.append(
            f"  labels: {labels.get('rejected', 0)} source names rejected by consensus, "
            f"{labels.get('attached', 0)} unnamed faces attached to a person"
        )
    if run["skipped_by_reason"]:
        lines.append("  skipped: " + _reasons(run["skipped_by_reason"]))
    if run["failed_by_reason"]:
        lines.append("  failed:  " + _reasons(run["failed_by_reason"]))
    if run["units_failed_by_reason"]:
        lines.append("  lookups failed: " + _reasons(run["units_failed_by_reason"]))
    if run.get("lookups", {}).get("not_tried"):
        lines.append(f"  lookups not tried: {run['lookups']['not_tried']} (pending for the next run)")
    for kind, down in (summary.get("sources_down") or {}).items():
        lines.append(f"  stopped: {kind} lookups, {down['host']} unreachable ({down['reason']}: {down['error']})")
    if (summary.get("discovery") or {}).get("search_disallowed_by_robots_txt"):
        units = ((summary.get("state") or {}).get("units") or {}).get("search") or {}
        waiting = sum(n for status, n in units.items() if status != "done")
        lines.append(
            f"  IMAGE SEARCH DISALLOWED by the search page's robots.txt: {waiting} search lookup(s) "
            "not made (pending; see the log)"
        )
    rates = summary["rates"]
    active = [f"{stage} {rates[stage]['per_s']:.1f}/s" for stage in STAGES if rates[stage]["count"]]
    lines.append("  rates:  " + (", ".join(active) if active else "nothing processed"))
    state = summary.get("state")
    if state:
        lines.append(
            f"  state:  {state.get('done', 0)} done, {state.get('pending', 0)} pending, "
            f"{state.get('failed', 0)} failed, {state.get('skipped', 0)} skipped (all runs)"
        )
        lookups = [counts for kind, counts in (state.get("units") or {}).items() if kind in LOOKUP_KINDS]
        pending, failed = (sum(c.get(status, 0) for c in lookups) for status in ("pending", "failed"))
        if pending or failed:
            lines.append(
                f"  lookups: {pending} pending, {failed} failed (all runs; --retry-failed retries the failed ones)"
            )
    nodes = summary.get("nodes")
    if nodes:
        lines.append(
            "  nodes:  "
            + ", ".join(
                f"{name} {c.get('photos', 0)} photos" + (f" ({c['failed']} failed)" if c.get("failed") else "")
                for name, c in nodes.items()
            )
        )
    store = summary.get("store")
    if store:
        lines.append(f"  store:  {store.get('faces')} faces of {store.get('people')} people ({store.get('backend')})")
    return "\n".join(lines)


def _queued(run: Mapping[str, Any]) -> str:
    resumed = run.get("resumed", 0)
    return f"{run['discovered'] - resumed} new, {resumed} resumed from earlier runs"


def _sorted(counter: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])) if v}


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
