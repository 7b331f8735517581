"""Management → Token Distribution (docs/product.md, Token Distribution): allocation
status, presets, the policy forms, preview and run, per-user overrides and the
rebalancing schedule.

One page (``DistributionView``) shows every section; each form posts to its own
POST-only view, which calls one service of ``tokens.services.distribution`` and
redirects back with a message, or renders the page again with the form's errors
(status 400) and nothing changed.

One module per part: ``page`` (the page), ``actions`` (the POST-only views, the
preview and the run) and ``text`` (how the numbers read).
"""

from tokens.views.distribution.actions import (
    AutoIncreaseUpdateView,
    DistributionPreviewView,
    DistributionRunView,
    LimitsUpdateView,
    OverrideRemoveView,
    OverrideSetView,
    PresetApplyView,
    ReclamationUpdateView,
    ScheduleUpdateView,
)
from tokens.views.distribution.page import DistributionView

__all__ = [
    "AutoIncreaseUpdateView",
    "DistributionPreviewView",
    "DistributionRunView",
    "DistributionView",
    "LimitsUpdateView",
    "OverrideRemoveView",
    "OverrideSetView",
    "PresetApplyView",
    "ReclamationUpdateView",
    "ScheduleUpdateView",
]
