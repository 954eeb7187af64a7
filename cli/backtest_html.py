"""`healthbot backtest --html FILE`: one self-contained page a CS leader can read (inline
SVG charts, no scripts, nothing fetched)."""

from __future__ import annotations

from html import escape

W, H, PAD = 320, 240, 36  # chart size and margin, px


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _num(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _axes(x_label: str, y_label: str) -> str:
    x0, y0, x1, y1 = PAD, H - PAD, W - 8, 8
    ticks = "".join(
        f'<text x="{x0 + t * (x1 - x0):.0f}" y="{y0 + 14}" font-size="10" '
        f'text-anchor="middle">{t:.1f}</text>'
        f'<text x="{x0 - 4}" y="{y0 - t * (y0 - y1) + 3:.0f}" font-size="10" '
        f'text-anchor="end">{t:.1f}</text>'
        for t in (0, 0.5, 1)
    )
    return (
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>{ticks}'
        f'<text x="{(x0 + x1) / 2:.0f}" y="{H - 4}" font-size="11" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="10" y="{(y0 + y1) / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 10 {(y0 + y1) / 2:.0f})">{escape(y_label)}</text>'
    )


def _xy(x: float, y: float) -> str:
    return f"{PAD + x * (W - 8 - PAD):.1f},{H - PAD - y * (H - PAD - 8):.1f}"


def _line_chart(points: list, x_label: str, y_label: str, title: str, dots: bool = False) -> str:
    diagonal = f'<polyline points="{_xy(0, 0)} {_xy(1, 1)}" stroke="#bbb" stroke-dasharray="4"/>'
    line = " ".join(_xy(x, y) for x, y in points)
    marks = "".join(
        f'<circle cx="{_xy(x, y).split(",")[0]}" cy="{_xy(x, y).split(",")[1]}" r="3" '
        'fill="#1f6feb"/>'
        for x, y in points
        if dots
    )
    body = (
        f'<polyline points="{line}" fill="none" stroke="#1f6feb" stroke-width="2"/>'
        if points
        else f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">not enough outcomes</text>'
    )
    return (
        f'<figure><figcaption>{escape(title)}</figcaption><svg width="{W}" height="{H}" '
        f'xmlns="http://www.w3.org/2000/svg">{_axes(x_label, y_label)}{diagonal}{body}{marks}'
        "</svg></figure>"
    )


def _bar_chart(bands: list[dict]) -> str:
    n = len(bands)
    slot = (W - 8 - PAD) / n
    bars = []
    for i, b in enumerate(reversed(bands)):  # lowest band on the left
        x = PAD + i * slot + 4
        rate = b["retention"]
        h = 0 if rate is None else rate * (H - PAD - 8)
        bars.append(
            f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{slot - 8:.1f}" height="{h:.1f}" '
            f'fill="#2da44e"><title>{escape(b["band"])}: {_pct(rate)} of '
            f"{b['outcomes']}</title></rect>"
            f'<text x="{x + (slot - 8) / 2:.1f}" y="{H - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{escape(b["band"])}</text>'
            f'<text x="{x + (slot - 8) / 2:.1f}" y="{H - PAD - h - 3:.1f}" font-size="10" '
            f'text-anchor="middle">{_pct(rate)}</text>'
        )
    return (
        "<figure><figcaption>Retention by score band (renewed or expanded)</figcaption>"
        f'<svg width="{W}" height="{H}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 8}" y2="{H - PAD}" stroke="#444"/>'
        f"{''.join(bars)}</svg></figure>"
    )


def _table(head: tuple[str, ...], rows: list[tuple]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render_html(r: dict) -> str:
    curves = r.get("curves", {})
    segments = [
        (name, s["outcomes"], s["churned"], _num(s["auc"]), _pct(s["precision"]),
         _pct(s["recall"]), s["problem"] or "")
        for name, s in r["segments"].items()
    ]  # fmt: skip
    misses = [
        (m["name"], m["churned_on"], f"{m['total']:.0f}", m["reason"])
        for m in r["false_negatives"][:25]
    ]
    warn = r["first_warning"]
    csm = [
        (c["csm"], c["rated_outcomes"], c["churned"], _num(c["mean_rating_churned"]),
         _num(c["mean_rating_kept"]), _num(c["auc"]))
        for c in r["csm_sentiment"]
    ]  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Health score backtest</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1040px;margin:2em auto;color:#222}}
figure{{display:inline-block;margin:0 1em 1em 0}} figcaption{{font-weight:600;margin-bottom:4px}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}} td,th{{border-bottom:1px solid #ddd;
padding:4px 10px;text-align:left;vertical-align:top}} .big{{font-size:2em;font-weight:700}}
.kpi{{display:inline-block;margin-right:2em}}
</style></head><body>
<h1>Does the health score predict renewals?</h1>
<p>{r["outcomes"]} renewal outcomes ({r["churned"]} churned) judged by the score each account
had {r["lead_days"]} days before its outcome (model {escape(str(r["model_version"]))}).
{r.get("without_score", 0)} outcomes had no score then and are left out.</p>
<div><span class="kpi"><span class="big">{_num(r["auc"])}</span><br>AUC (0.5 = chance)</span>
<span class="kpi"><span class="big">{_pct(r["precision"])}</span><br>of accounts flagged at risk
churned</span>
<span class="kpi"><span class="big">{_pct(r["recall"])}</span><br>of churns were flagged</span>
<span class="kpi"><span class="big">{_pct(r["accuracy"])}</span><br>accuracy</span></div>
<p>Flag: the tier shown was At risk or Critical. F1 {_num(r["f1"])}.
{warn["warned"]} of {warn["churns"]} churned accounts were flagged and stayed flagged until
they left (median notice {warn["median_days_notice"] or "—"} days;
{warn["warned_90_days_ahead"]} with 90 days or more).</p>
{_line_chart(curves.get("roc", []), "false positive rate", "true positive rate", "ROC curve")}
{_bar_chart(r["bands"])}
{
        _line_chart(
            curves.get("calibration", []),
            "predicted risk (100 - score) / 100",
            "observed churn rate",
            "Calibration",
            dots=True,
        )
    }
<h2>By segment</h2>
{_table(("Segment", "Outcomes", "Churned", "AUC", "Precision", "Recall", "Note"), segments)}
<h2>Healthy at the time, churned anyway ({len(r["false_negatives"])})</h2>
{_table(("Account", "Churned on", "Score", "What the score said then"), misses)}
<h2>CSM sentiment against outcomes</h2>
{
        _table(
            (
                "CSM",
                "Rated outcomes",
                "Churned",
                "Mean rating, churned",
                "Mean rating, kept",
                "AUC",
            ),
            csm,
        )
    }
<p>Insufficient data (left out above): {r["insufficient_data"]["outcomes"]} outcomes,
{r["insufficient_data"]["churned"]} churned.</p>
</body></html>
"""
