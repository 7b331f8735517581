"""The one table (printed and written to RESULTS.md, with the machine)."""

from pathlib import Path

HEADER = ["Benchmark", "Our figure", "Baseline (same run)", "Ratio", "Target", "Result"]


def table(rows) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    for r in rows:
        cells = [r.name, r.ours, r.baseline, r.ratio, r.target]
        cells.append("pass" if r.passed else "**FAIL**")
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def write_results(
    path: Path, rows, *, scale, info, ctx, elapsed, ledger_seconds, reused, loads
) -> str:
    text = table(rows)
    details = [f"- {r.name}: {r.detail}" for r in rows if r.detail]
    counts = ", ".join(f"{k} {v:,}" for k, v in ctx.counts.items())
    body = [
        f"# Benchmark results ({scale} scale)",
        "",
        "Written by `python -m bench --scale " + scale + "` (see bench/README.md). "
        "Every ratio compares two figures measured in the same run; times are "
        "medians.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        "## Dataset",
        "",
        f"- {counts}",
        f"- built in {ctx.build_seconds:,.0f} s"
        + (" (reused from a kept database)" if reused else "")
        + f"; check_ledger on it: clean, {ledger_seconds:,.0f} s",
        f"- whole run (build, checks, server, benchmarks): {elapsed / 60:.1f} min",
        "- 1-minute load average before → after each benchmark (2 cores; other "
        "work on the machine shows here): "
        + ", ".join(f"{name} {load}" for name, load in loads.items()),
        "",
        "## Results",
        "",
        text,
        "",
        "## Details",
        "",
        *details,
        "",
    ]
    notes = Path(__file__).with_name("NOTES.md")
    if scale == "full" and notes.exists():
        body += ["", notes.read_text().strip(), ""]
    path.write_text("\n".join(body))
    return text
