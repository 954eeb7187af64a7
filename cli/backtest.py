"""`healthbot backtest`: parse, call the use-case, render (terminal, JSON, HTML)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import UserError
from health.db import make_engine, session_scope
from health.scoring.model import load_model
from health.settings import get_settings

out = Console()


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


def backtest(
    lead_days: Annotated[int, typer.Option(min=1, max=730, help="Days before the outcome")] = 90,
    since: Annotated[str | None, typer.Option(help="Outcomes from this day (YYYY-MM-DD)")] = None,
    until: Annotated[str | None, typer.Option(help="Outcomes up to this day")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this segment")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report here")] = None,
    fit: Annotated[bool, typer.Option("--fit", help="Learn weights; compare on held-out time")] = (
        False
    ),
    write: Annotated[Path | None, typer.Option(help="--fit: write the proposed model YAML")] = None,
    shadow: Annotated[
        Path | None, typer.Option(help="Score history with this candidate model YAML (no writes)")
    ] = None,
) -> None:
    """Does the score predict what happened? Every renewed, churned or expanded outcome
    against the score its account had --lead-days before it."""
    settings = get_settings()
    floor = {"min_confidence": settings.healthbot_min_confidence}  # HEALTHBOT_MIN_CONFIDENCE
    model = load_model(settings.healthbot_model, **floor)
    window = {
        "lead_days": lead_days,
        "since": _day(since, "--since"),
        "until": _day(until, "--until"),
        "segment": segment,
    }
    if write and not fit:
        raise UserError("--write saves a fitted model: use it with --fit")
    if sum(map(bool, (fit, shadow, html))) > 1:
        raise UserError("--fit, --shadow and --html each make their own report: use one at a time")
    for path, flag in ((write, "--write"), (html, "--html")):
        if path is not None and not path.resolve().parent.is_dir():
            raise UserError(f"{flag} {path}: the folder {path.parent} does not exist")
    from health.calibration import fit_report, model_yaml, shadow_report

    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        if shadow:
            candidate = load_model(shadow, **floor)
            result = shadow_report(session=session, current=model, candidate=candidate, **window)
            return _show(result, as_json, lambda: _side_by_side(result, "current", "candidate"))
        if fit:
            result, proposal = fit_report(session=session, model=model, **window)
            if result["problem"]:
                raise UserError(result["problem"])
            if write and proposal is not None:
                note = (
                    f"Proposed by `healthbot backtest --fit` from {result['train']} outcomes "
                    f"settled by {result['cutoff']}.\nHeld-out AUC: current "
                    f"{result['current']['auc']}, proposed {result['proposed']['auc']}. "
                    "Review, then point HEALTHBOT_MODEL at this file."
                )
                write.write_text(model_yaml(proposal, note=note))
            return _show(result, as_json, lambda: _show_fit(result, write))
        from health.backtest_read import backtest_report

        result = backtest_report(session=session, **window)
    if result["problem"]:
        raise UserError(f"cannot backtest: {result['problem']}. {_hint(result)}")
    if html:
        from cli.backtest_html import render_html

        html.write_text(render_html(result))
    _show(result, as_json, lambda: _show_backtest(result, html))


def _hint(r: dict) -> str:
    if (r.get("insufficient_data") or {}).get("outcomes"):
        return (
            f"{r['insufficient_data']['outcomes']} outcomes had a score below the confidence "
            "floor (Insufficient data): connect the missing sources (`healthbot doctor`), or "
            "lower HEALTHBOT_MIN_CONFIDENCE to rank them anyway"
        )
    if r.get("without_score"):
        return (
            f"{r['without_score']} of {r['outcomes_in_range']} outcomes had no score "
            f"{r['lead_days']} days before: run `healthbot score --backfill`"
        )
    return "Import outcomes with `healthbot import outcomes FILE`"


def _show(result: dict, as_json: bool, render) -> None:
    if as_json:
        print(json.dumps(result, default=str))
    else:
        render()


def or_dash(v: float | None, fmt: str = ".2f") -> str:
    """A metric as `fmt`, or a dash when it could not be computed."""
    return "—" if v is None else format(v, fmt)


def _metrics_rows(table: Table, parts: list[dict]) -> None:
    for label, key, fmt in (
        ("Outcomes", "outcomes", "d"),
        ("Churned", "churned", "d"),
        ("AUC", "auc", ".3f"),
        ("Precision (at risk or critical)", "precision", ".0%"),
        ("Recall", "recall", ".0%"),
        ("F1", "f1", ".2f"),
        ("Accuracy", "accuracy", ".0%"),
    ):
        table.add_row(label, *(or_dash(p[key], fmt) for p in parts))


def _show_backtest(r: dict, html: Path | None) -> None:
    out.print(
        f"[bold]Backtest[/bold]: {r['outcomes']} outcomes ({r['churned']} churned) against the "
        f"score {r['lead_days']} days before, model {r['model_version']}"
        + (f"; {r['without_score']} had no score then" if r["without_score"] else "")
    )
    summary = Table(title="How well the score predicted", title_justify="left")
    summary.add_column("Metric")
    summary.add_column("Value", justify="right")
    _metrics_rows(summary, [r])
    out.print(summary)
    bands = Table(title="Retention by score band", title_justify="left")
    for col in ("Band", "Outcomes", "Retained", "Retention"):
        bands.add_column(col, justify="left" if col == "Band" else "right")
    for b in r["bands"]:
        retention = or_dash(b["retention"], ".0%")
        bands.add_row(b["band"], str(b["outcomes"]), str(b["retained"]), retention)
    out.print(bands)
    for title, groups in (("By segment", r["segments"]), ("By model version", r["model_versions"])):
        table = Table(title=title, title_justify="left")
        for col in ("", "Outcomes", "Churned", "AUC", "Precision", "Recall", "Note"):
            table.add_column(col, justify="right" if col not in ("", "Note") else "left")
        for name, g in groups.items():
            table.add_row(
                name, str(g["outcomes"]), str(g["churned"]), or_dash(g["auc"], ".3f"),
                or_dash(g["precision"], ".0%"), or_dash(g["recall"], ".0%"), g["problem"] or "",
            )  # fmt: skip
        out.print(table)
    w = r["first_warning"]
    out.print(
        f"First warning: {w['warned']} of {w['churns']} churned accounts were flagged and stayed "
        f"flagged until they left; median notice {or_dash(w['median_days_notice'], '.0f')} days, "
        f"{w['warned_90_days_ahead']} with 90 days or more, {w['never_warned']} never flagged."
    )
    if r["false_negatives"]:
        misses = Table(
            title=f"Healthy then, churned anyway ({len(r['false_negatives'])}; worst 10)",
            title_justify="left",
        )
        for col in ("Account", "Churned", "Score", "What the score said then"):
            misses.add_column(col)
        for m in r["false_negatives"][:10]:
            misses.add_row(m["name"], m["churned_on"], f"{m['total']:.0f}", m["reason"])
        out.print(misses)
    if r["csm_sentiment"]:
        csm = Table(title="CSM sentiment against outcomes", title_justify="left")
        for col in ("CSM", "Rated", "Churned", "Mean churned", "Mean kept", "AUC"):
            csm.add_column(col, justify="left" if col == "CSM" else "right")
        for c in r["csm_sentiment"]:
            csm.add_row(
                c["csm"], str(c["rated_outcomes"]), str(c["churned"]),
                or_dash(c["mean_rating_churned"]), or_dash(c["mean_rating_kept"]),
                or_dash(c["auc"], ".3f"),
            )  # fmt: skip
        out.print(csm)
    unsure = r["insufficient_data"]
    if unsure["outcomes"]:
        out.print(
            f"Insufficient data at the time (left out above): {unsure['outcomes']} outcomes, "
            f"{unsure['churned']} churned."
        )
    if html:
        out.print(f"HTML report: {html}")


def _side_by_side(r: dict, a: str, b: str) -> None:
    table = Table(
        title=f"{a.title()} ({r[a]['model_version']}) vs {b} ({r[b]['model_version']})",
        title_justify="left",
    )
    for col in ("Metric", a.title(), b.title()):
        table.add_column(col, justify="left" if col == "Metric" else "right")
    _metrics_rows(table, [r[a], r[b]])
    out.print(table)
    for side in (a, b):
        if r[side]["problem"]:
            out.print(f"{side}: {r[side]['problem']}")


def _show_fit(r: dict, write: Path | None) -> None:
    out.print(
        f"Fitted on {r['train']} outcomes settled by {r['cutoff']} (L2 penalty {r['penalty']}, "
        f"time-CV AUC {or_dash(r['cv_auc'], '.3f')}); judged on {r['held_out']} later outcomes "
        f"whose lead day came after every training outcome."
    )
    if r["cv_auc"] is None:
        out.print(
            "  No cross-validation fold had outcomes settled a lead time before it (the history "
            "is short): the proposal stays close to the current model."
        )
    _side_by_side(r, "current", "proposed")
    weights = Table(title="Weights (share of the score)", title_justify="left")
    for col in ("Component / metric", "Current", "Proposed"):
        weights.add_column(col, justify="left" if col.startswith("Comp") else "right")
    for ckey, c in r["components"].items():
        weights.add_row(f"[bold]{ckey}[/bold]", f"{c['current']:g}", f"{c['proposed']:g}")
        for key, w in r["weights"].items():
            if w["component"] == ckey:
                weights.add_row(f"  {key}", f"{w['current']:.1f}", f"{w['proposed']:.1f}")
    out.print(weights)
    if write:
        out.print(f"Proposed model written to {write}: review it, then set HEALTHBOT_MODEL.")
    else:
        out.print("Nothing written: add --write FILE to save the proposal as a model YAML.")
