"""The columns and the base table every list page of the tokens app shares: numbers,
yes/no, page sizes, and a table that sorts only on the columns it knows."""

import django_tables2 as tables
from django.contrib.humanize.templatetags.humanize import intcomma
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

NUM = {"th": {"class": "num"}, "td": {"class": "num"}}
PAGE_SIZES = (25, 50, 100, 500)


class NumberColumn(tables.Column):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", NUM)
        super().__init__(*args, **kwargs)

    def render(self, value):
        return intcomma(value)

    def value(self, value):
        return value


class YesNoColumn(tables.Column):
    def __init__(self, *args, yes_class="badge-success", no_class="badge-muted", **kw):
        self.yes_class, self.no_class = yes_class, no_class
        super().__init__(*args, **kw)

    def render(self, value):
        if value:
            return format_html(
                '<span class="badge {}">{}</span>', self.yes_class, _("Yes")
            )
        return format_html('<span class="badge {}">{}</span>', self.no_class, _("No"))

    def value(self, value):
        return "yes" if value else "no"


class KnownSortTable(tables.Table):
    """``?sort=`` may only name sortable columns of this table; anything else
    (a typo, a dotted path, a 10 KB string) is ignored and the default order holds."""

    @property
    def order_by(self):
        return tables.Table.order_by.fget(self)

    @order_by.setter
    def order_by(self, value):
        names = value.split(",") if isinstance(value, str) else list(value or ())
        # Hidden columns (not chosen by the admin) still sort: a link keeps working.
        known = {c.name for c in self.columns.iterall() if c.orderable}
        wanted = tuple(
            n for n in names if isinstance(n, str) and n.lstrip("-") in known
        )
        tables.Table.order_by.fset(self, wanted or self._meta.order_by)
