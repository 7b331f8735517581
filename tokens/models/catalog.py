"""What the platform sells and meters: the token types (defined here once; every
other module imports them from ``tokens.models``) and the AI models the gateway may
call."""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization


class TokenType(models.TextChoices):
    INFERENCE = "inference", _("Inference")
    EMBEDDING = "embedding", _("Embedding")


# The token types as plain strings, in display order, and the field that holds each
# type's amount on a purchase or an enterprise account request
# (``inference_tokens``, ``embedding_tokens``).
TOKEN_TYPES: tuple[str, ...] = tuple(TokenType.values)
TYPE_FIELDS: dict[str, str] = {t: f"{t}_tokens" for t in TOKEN_TYPES}


class AIModel(models.Model):
    """A model the gateway may call, with the rates that turn its raw prompt and
    completion tokens into platform tokens."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    tags = models.CharField(
        max_length=300, blank=True, help_text=_("Comma-separated, e.g. chat,vision.")
    )
    token_type = models.CharField(
        max_length=10, choices=TokenType.choices, default=TokenType.INFERENCE
    )
    input_rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    output_rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    is_active = models.BooleanField(default=True)
    allowed_for = models.ManyToManyField(
        Organization,
        blank=True,
        related_name="allowed_models",
        help_text=_("Organizations that allowed only some models list them here."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "AI model"
        constraints = [
            models.CheckConstraint(
                condition=Q(input_rate__gte=0) & Q(output_rate__gte=0),
                name="aimodel_rates_non_negative",
                violation_error_message=_("Rates cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return self.name
