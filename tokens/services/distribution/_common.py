"""What several parts of the distribution engine share: the model enums under
short names, number helpers and a user's ceiling. The pool's headroom is the
kernel's (``tokens/services/pool/kernel.py``, ``headrooms``)."""

from decimal import Decimal

from accounts.models import AuditEvent
from tokens.models import AllocationChange, DistributionPolicy

Action = AuditEvent.Action
Source = AllocationChange.Source
Preset = DistributionPolicy.Preset
BumpMode = DistributionPolicy.BumpMode
Frequency = DistributionPolicy.Frequency


# --- values ------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _plain(value):
    """A number as JSON stores it: int when whole, else float."""
    value = _decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _ceiling(policy, override) -> int | None:
    if override is not None and override.ceiling is not None:
        return override.ceiling
    return policy.ceiling
