"""``{{ delta|human_duration }}``: a timedelta in words (lib/durations.py)."""

from django import template

from asksage_admin.lib.durations import human_duration as _human_duration

register = template.Library()


@register.filter
def human_duration(value) -> str:
    return _human_duration(value)
