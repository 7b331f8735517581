from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.emails import canonical_email, validate_plain_email


class Organization(models.Model):
    """A customer that buys a monthly token pool and manages its own users."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    name = models.CharField(max_length=200)
    billing_address = models.TextField(blank=True)
    contact_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)
    country = models.CharField(max_length=100, blank=True)
    domain = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    store_prompt_excerpts = models.BooleanField(
        default=False,
        help_text=_("Keep the first 2,000 characters of prompts and responses."),
    )
    chat_url = models.URLField(
        blank=True, help_text=_("Overrides the platform's Back to Chat link.")
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class UserManager(BaseUserManager):
    """Users sign in with their email in its canonical form (accounts.emails)."""

    use_in_migrations = True

    def get_by_natural_key(self, username):
        # Exact equality with the stored canonical form: iexact would use the
        # database's UPPER(), which folds look-alikes the lockout key keeps apart.
        return self.get(email=canonical_email(username))

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=canonical_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_verified_at", timezone.now())
        extra.setdefault("terms_accepted_at", timezone.now())
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Belongs to at most one organization, as a user or an admin."""

    class Role(models.TextChoices):
        USER = "user", _("User")
        ADMIN = "admin", _("Admin")

    # Stored in its canonical form (accounts.emails); unique as stored and lower-cased.
    email = models.EmailField(
        _("email"),
        max_length=254,
        unique=True,
        validators=[validate_plain_email],
        error_messages={"unique": _("A user with this email already exists.")},
    )
    first_name = models.CharField(_("first name"), max_length=150)
    last_name = models.CharField(_("last name"), max_length=150)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="members",
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    is_paid = models.BooleanField(_("paid"), default=True)
    is_banned = models.BooleanField(_("banned"), default=False)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    terms_accepted_at = models.DateTimeField(null=True, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)
    is_staff = models.BooleanField(
        _("staff status"),
        default=False,
        help_text=_("Can sign in to the staff site (/staff/)."),
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("Unticked accounts cannot sign in. Users are never deleted."),
    )
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="user_email_ci_unique",
                violation_error_message=_("A user with this email already exists."),
            ),
        ]
        indexes = [models.Index(fields=["organization", "email"])]

    def __str__(self) -> str:
        return self.email

    def clean(self):
        super().clean()
        self.email = canonical_email(self.email)

    def save(self, *args, **kwargs):
        self.email = canonical_email(self.email)
        super().save(*args, **kwargs)

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name

    @property
    def is_org_admin(self) -> bool:
        return self.role == self.Role.ADMIN and self.organization_id is not None

    @property
    def needs_mfa(self) -> bool:
        """Admins and superusers must pass MFA before the panel when required."""
        return settings.REQUIRE_ADMIN_MFA and (self.is_org_admin or self.is_superuser)

    @property
    def is_email_verified(self) -> bool:
        return self.email_verified_at is not None


class AuditEvent(models.Model):
    """One change or security event, append-only: who did what to what, from where."""

    class Action(models.TextChoices):
        SIGN_IN = "auth.sign_in", _("Signed in")
        SIGN_OUT = "auth.sign_out", _("Signed out")
        SIGN_IN_FAILED = "auth.sign_in_failed", _("Sign-in failed")
        LOCKOUT = "auth.lockout", _("Locked out")
        PASSWORD_RESET_REQUESTED = (
            "auth.password_reset_requested",
            _("Password reset requested"),
        )
        PASSWORD_RESET = "auth.password_reset", _("Password reset")
        MFA_ENROLLED = "mfa.enrolled", _("MFA enrolled")
        MFA_RESET = "mfa.reset", _("MFA reset")
        MFA_FAILED = "mfa.failed", _("MFA code refused")
        USER_REGISTERED = "user.registered", _("Registered")
        USER_EMAIL_VERIFIED = "user.email_verified", _("Email verified")
        USER_PAID_CHANGED = "user.paid_changed", _("Paid status changed")
        USER_BANNED = "user.banned", _("Banned")
        USER_UNBANNED = "user.unbanned", _("Unbanned")
        LIMIT_CHANGED = "allocation.limit_changed", _("Limit changed")
        PURCHASE_RECORDED = "purchase.recorded", _("Purchase recorded")
        ORG_REQUESTED = "organization.requested", _("Enterprise account requested")
        ORG_ACTIVATED = "organization.activated", _("Organization activated")
        ORG_REQUEST_REJECTED = (
            "organization.request_rejected",
            _("Enterprise request rejected"),
        )
        ORG_REQUEST_WITHDRAWN = (
            "organization.request_withdrawn",
            _("Enterprise request withdrawn"),
        )
        MEMBER_ADDED = "organization.member_added", _("Member added")
        MEMBER_REMOVED = "organization.member_removed", _("Member removed")
        DATA_EXPORTED = "data.exported", _("Data exported")
        POLICY_CHANGED = "distribution.policy_changed", _("Distribution policy changed")
        OVERRIDE_SET = "distribution.override_set", _("User override set")
        OVERRIDE_REMOVED = "distribution.override_removed", _("User override removed")
        DISTRIBUTION_RUN = "distribution.run", _("Distribution run")
        AUTO_INCREASE = "allocation.auto_increase", _("Limit auto-increased")
        REQUEST_SUBMITTED = "token_request.submitted", _("Token request submitted")
        REQUEST_APPROVED = "token_request.approved", _("Token request approved")
        REQUEST_DENIED = "token_request.denied", _("Token request denied")
        REQUEST_WITHDRAWN = "token_request.withdrawn", _("Token request withdrawn")
        ACCESS_TOKEN_CREATED = "access_token.created", _("API access token created")
        ACCESS_TOKEN_REVOKED = "access_token.revoked", _("API access token revoked")
        ACCESS_TOKEN_REFUSED = "access_token.refused", _("API access token refused")
        AUTO_APPROVAL_CHANGED = (
            "token_request.auto_approval_changed",
            _("Auto-approval rule changed"),
        )
        ORG_SETTINGS_CHANGED = "organization.settings_changed", _("Settings changed")
        ACTIVITY_PRUNED = "retention.pruned", _("Old activity pruned")
        SERVICE_KEY_CREATED = "service_key.created", _("Service key created")
        SERVICE_KEY_REVOKED = "service_key.revoked", _("Service key revoked")

    time = models.DateTimeField(default=timezone.now, db_index=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, choices=Action.choices)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # The means, when not the panel: "api-token <prefix> (<name>)" for the admin API.
    via = models.CharField(max_length=160, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(
                fields=["organization", "-time", "-id"], name="audit_org_time_idx"
            ),
            models.Index(fields=["action", "-time"], name="audit_action_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor_email or 'system'}"


class EnterpriseAccountRequest(models.Model):
    """An organization's request for an Enterprise Account (docs/product.md, Sales
    flow), reviewed by sales staff, who activate or reject it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVATED = "activated", _("Activated")
        REJECTED = "rejected", _("Rejected")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    organization_name = models.CharField(max_length=200)
    billing_address = models.TextField()
    user_emails = models.JSONField(help_text=_("Emails of all users."))
    admin_emails = models.JSONField(help_text=_("Emails of the admins."))
    inference_tokens = models.BigIntegerField()
    embedding_tokens = models.BigIntegerField()
    other_information = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING
    )
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "enterprise account request"

    def __str__(self) -> str:
        return f"{self.organization_name} ({self.get_status_display()})"


class ServiceKey(models.Model):
    """A gateway's credential for /api/v1/. Only a digest of the secret is kept; a
    key bound to an organization acts only for that organization's users."""

    name = models.CharField(max_length=100)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="service_keys",
        help_text=_("Empty = the platform gateway, which may act for any user."),
    )
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class TablePreference(models.Model):
    """The columns one person chose to see in one panel table (docs/product.md, The
    panel shell). A display preference: it changes nothing anyone else sees, so it is
    not audited."""

    class Table(models.TextChoices):
        USERS = "users", _("User Management")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="table_preferences",
    )
    table = models.CharField(max_length=40, choices=Table.choices)
    columns = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "table"],
                name="table_preference_one_per_user_and_table",
                violation_error_message=_("This table already has your columns."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} · {self.table}"


class AdminAccessToken(models.Model):
    """A personal access token of an org admin for the admin API (/api/v1/admin/,
    docs/admin-api.md). Only a digest of the secret is kept; it acts as its owner,
    on the owner's organization, and only while the owner is still an active,
    unbanned admin of it."""

    class Scope(models.TextChoices):
        READ = "read", _("Read only")
        WRITE = "write", _("Read and write")

    name = models.CharField(max_length=100)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="access_tokens"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    scope = models.CharField(max_length=8, choices=Scope.choices)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["organization", "-created_at"], name="access_token_org_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
