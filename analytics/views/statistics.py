"""Analytics → Token Statistics (docs/product.md, Token Statistics): KPIs, charts,
tables and CSV exports.

The page reads rollups only (``analytics.selectors``); the raw events export is the one
reader of ``UsageEvent``, streamed from the database cursor in chunks. Bad period input
re-renders the page with the message and status 400.
"""

import csv
import datetime as dt
import io
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from accounts.services import data_export_record
from analytics import selectors
from analytics.forecasts import statistics_forecast
from analytics.forms import PeriodForm
from analytics.selectors import StatsPeriod
from asksage_admin.lib.csv import csv_response, safe_cell
from asksage_admin.lib.periods import last_day
from tokens.models import TokenType
from tokens.selectors.metering import EXPORT_COLUMNS

TEMPLATE = "analytics/statistics.html"
EXPORT_CHUNK = 2000


def period_label(period: StatsPeriod) -> str:
    if period.is_whole_month:
        return date_format(period.start, "F Y")
    return _("%(start)s – %(end)s") % {
        "start": date_format(period.start, "DATE_FORMAT"),
        "end": date_format(period.end, "DATE_FORMAT"),
    }


def _month_label(month: dt.date) -> str:
    return date_format(month, "M Y")


def _chart(labels: list[str], series: dict[str, list[int]]) -> dict[str, Any]:
    """Chart data for ``static/js/statistics.js``: one dataset per token type."""
    return {
        "labels": labels,
        "datasets": [
            {"key": t, "label": str(TokenType(t).label), "data": data}
            for t, data in series.items()
        ],
    }


def _with_projection(chart: dict[str, Any], projection: dict) -> dict[str, Any]:
    """The daily chart with the forecast's datasets (docs/forecasts.md), stacked
    on the usage: what is still expected on each day left in the month."""
    for t, data in projection.items():
        chart["datasets"].append(
            {
                "key": f"projection-{t}",
                "label": _("%(type)s (projected)") % {"type": TokenType(t).label},
                "data": data,
            }
        )
    return chart


class StatisticsMixin(PanelAccessMixin):
    nav_active = "statistics"

    def invalid(self, request: HttpRequest, form: PeriodForm) -> HttpResponse:
        """The page with the form's messages and no figures (400, never a 500)."""
        context = {
            **self.panel_context(),
            "form": form,
            "errors": form.errors_text(),
        }
        return TemplateResponse(request, TEMPLATE, context, status=400)


class StatisticsView(StatisticsMixin, TemplateView):
    template_name = TEMPLATE

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        form = PeriodForm(request.GET)
        if not form.is_valid():
            return self.invalid(request, form)
        return self.render_to_response(
            self.get_context_data(form=form, period=form.stats_period())
        )

    def get_context_data(self, **kwargs) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        period: StatsPeriod = context["period"]
        types = period.token_types
        kpis = selectors.kpis(self.org, period)
        days = selectors.daily_usage(self.org, period)
        months = selectors.monthly_usage(self.org, period)
        models = selectors.usage_by_model(self.org, period)
        forecast = statistics_forecast(self.org, period, days)
        context.update(
            period_label=period_label(period),
            months_label=_("%(start)s – %(end)s")
            % {
                "start": _month_label(months[0].month),
                "end": _month_label(months[-1].month),
            },
            type_label=(
                str(TokenType(types[0]).label) if len(types) == 1 else _("All types")
            ),
            types=[(t, TokenType(t).label) for t in types],
            kpis=kpis,
            kpi_cards=self.kpi_cards(period, kpis),
            days=days,
            months=months,
            months_total=sum(m.total for m in months),
            months_events=sum(m.events for m in months),
            models=models,
            model_events=sum(m.events for m in models),
            top_limit=selectors.TOP_USERS,
            top_users=selectors.top_users(self.org, period, total=kpis.used.total),
            current_query=self.request.GET.urlencode(),
            daily_chart=_with_projection(
                _chart(
                    [d.day.isoformat() for d in days],
                    {t: [d.by_type[t] for d in days] for t in types},
                ),
                forecast["projection"],
            ),
            **forecast,
            monthly_chart=_chart(
                [_month_label(m.month) for m in months],
                {t: [m.tokens(t) for m in months] for t in types},
            ),
            model_chart=_chart(
                [m.name for m in models],
                {t: [getattr(m, t) for m in models] for t in types},
            ),
        )
        return context

    def kpi_cards(self, period: StatsPeriod, kpis: selectors.Kpis) -> list[dict]:
        months = period.months
        purchased_note = (
            _("pool of %(month)s") % {"month": date_format(months[0], "F Y")}
            if len(months) == 1
            else ngettext("pools of %(n)d month", "pools of %(n)d months", len(months))
            % {"n": len(months)}
        )
        return [
            {
                "key": "purchased",
                "label": _("Purchased"),
                "figure": kpis.purchased,
                "note": purchased_note,
            },
            {
                "key": "allocated",
                "label": _("Allocated"),
                "figure": kpis.allocated,
                "note": _("current monthly limits"),
            },
            {
                "key": "used",
                "label": _("Used"),
                "figure": kpis.used,
                "note": _("in the period"),
            },
            {
                "key": "unallocated",
                "label": _("Unallocated"),
                "figure": kpis.unallocated,
                "note": _("free to allocate now"),
            },
            {
                "key": "active_users",
                "label": _("Active users"),
                "figure": kpis.active_users,
                "note": _("with usage in the period"),
            },
            {
                "key": "pending_requests",
                "label": _("Requests pending"),
                "figure": kpis.pending_requests,
                "note": _("awaiting a decision"),
                "url": reverse("tokens:request_list")
                + self.panel_context()["org_query"],
            },
        ]


class StatisticsExportView(StatisticsMixin, View):
    """One CSV export of the page, for the same period and type: streamed, named
    ``<what>-<org id>-<from>-<to>.csv``, formula-leading cells escaped by
    ``csv_response``, audited as ``data.exported``."""

    what = ""
    header: list[str] = []

    def get(self, request: HttpRequest) -> HttpResponse:
        form = PeriodForm(request.GET)
        if not form.is_valid():
            return self.invalid(request, form)
        period = form.stats_period()
        start, end = self.covered(period)
        data_export_record(
            actor=request.user,
            organization=self.org,
            what=self.what,
            filters=period.as_filters(),
        )
        return self.response(
            f"{self.what}-{self.org.pk}-{start:%Y-%m-%d}-{end:%Y-%m-%d}.csv", period
        )

    def response(self, filename: str, period: StatsPeriod) -> HttpResponse:
        return csv_response(
            filename=filename, header=self.header, rows=self.rows(period)
        )

    def covered(self, period: StatsPeriod) -> tuple[dt.date, dt.date]:
        """The days the file covers, for its name."""
        return period.start, period.end

    def rows(self, period: StatsPeriod):
        raise NotImplementedError


class MonthlyExportView(StatisticsExportView):
    """The Monthly Data table: the 12 months ending with the period (more when the
    range is longer)."""

    what = "statistics-monthly"
    header = ["Year", "Month", "Inference", "Embedding", "Total", "Events"]

    def covered(self, period):
        months = period.trend_months
        return months[0], last_day(months[-1])

    def rows(self, period):
        for row in selectors.monthly_usage(self.org, period):
            yield [
                row.month.year,
                row.month.month,
                row.inference,
                row.embedding,
                row.total,
                row.events,
            ]


class UserExportView(StatisticsExportView):
    what = "statistics-users"
    header = [
        "Email",
        "Name",
        "Inference",
        "Embedding",
        "Total",
        "Max Inference Tokens",
        "Max Embedding Tokens",
    ]

    def rows(self, period):
        users = selectors.user_usage_for_export(self.org, period)
        for user in users.iterator(chunk_size=EXPORT_CHUNK):
            yield [
                user.email,
                user.get_full_name(),
                user.inference,
                user.embedding,
                user.inference + user.embedding,
                user.max_inference,
                user.max_embedding,
            ]


class ModelExportView(StatisticsExportView):
    what = "statistics-models"
    header = [
        "Model",
        "Model key",
        "Inference",
        "Embedding",
        "Total",
        "Share %",
        "Events",
    ]

    def rows(self, period):
        for row in selectors.usage_by_model(self.org, period):
            yield [
                row.name,
                row.key,
                row.inference,
                row.embedding,
                row.tokens,
                f"{row.share:.1f}",
                row.events,
            ]


class EventExportView(StatisticsExportView):
    """Every usage event of the range, streamed so memory stays flat at any size.

    PostgreSQL: ``COPY (SELECT …) TO STDOUT WITH (FORMAT csv)``, passed through row
    by row as the server sends them (a million rows in seconds, where building each
    row in Python takes ten times longer); the SELECT formats every cell exactly as
    ``csv_response`` would (formula escaping, ISO times, empty cells), see
    ``analytics.selectors.usage_events_copy``. Other databases: a cursor read in
    chunks of 2,000 through ``csv_response``."""

    what = "usage-events"
    header = EXPORT_COLUMNS

    def response(self, filename: str, period: StatsPeriod) -> HttpResponse:
        if connection.vendor != "postgresql":
            return super().response(filename, period)
        sql, params = selectors.usage_events_copy(self.org, period)
        response = CoalescedStreamingHttpResponse(
            _copy_lines(self.header, sql, params),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def rows(self, period):
        events = selectors.usage_events_for_export(self.org, period)
        for event_id, occurred_at, *rest in events.iterator(chunk_size=EXPORT_CHUNK):
            yield [event_id, occurred_at.astimezone(dt.UTC).isoformat(), *rest]


def _copy_lines(header: list[str], sql: str, params: list):
    """The header, then each row of the COPY as the server sends it (one row per
    message), with the ``\r\n`` line end of the csv module. Only the row's own end
    is changed: a line break inside a quoted cell is data and stays as it is."""
    line = io.StringIO()
    csv.writer(line).writerow([safe_cell(cell) for cell in header])
    yield line.getvalue()
    with connection.cursor() as cursor, cursor.cursor.copy(sql, params) as copy:
        for row in copy:
            yield bytes(row[:-1]) + b"\r\n"


class CoalescedStreamingHttpResponse(StreamingHttpResponse):
    """A streaming response whose rows reach the WSGI server in blocks of about
    64 KB: one socket write per block, not one per row (a million rows are a
    million ``send`` calls otherwise, half of the worker's time). The content is
    the same bytes, still streamed (memory stays flat); ``streaming_content``
    itself is unchanged, one piece per row."""

    block_size = 64 * 1024

    def __iter__(self):
        pending, size = [], 0
        for piece in self.streaming_content:
            pending.append(piece)
            size += len(piece)
            if size >= self.block_size:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)
