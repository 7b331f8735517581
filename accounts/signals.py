"""Authentication events from Django and django-axes, written to the audit trail.

The handlers only translate a framework signal into ``audit.record``; there is no
business logic here.
"""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.dispatch import receiver
from django.utils import timezone

from accounts import audit
from accounts.emails import canonical_email
from accounts.models import AuditEvent, User

Action = AuditEvent.Action


def _user_by_email(email: str | None) -> User | None:
    if not email:
        return None
    return User.objects.filter(email=canonical_email(email)).first()


@receiver(user_logged_in, dispatch_uid="audit_sign_in")
def _record_sign_in(sender, request, user, **kwargs):
    audit.record(action=Action.SIGN_IN, actor=user, target=user)


@receiver(user_logged_out, dispatch_uid="audit_sign_out")
def _record_sign_out(sender, request, user, **kwargs):
    if user is not None:
        audit.record(action=Action.SIGN_OUT, actor=user, target=user)


@receiver(user_login_failed, dispatch_uid="audit_sign_in_failed")
def _record_sign_in_failed(sender, credentials, request=None, **kwargs):
    email = str(credentials.get("username") or credentials.get("email") or "")[:254]
    user = _user_by_email(email)
    audit.record(
        action=Action.SIGN_IN_FAILED,
        actor=user,
        actor_email=email,
        target=user,
        message="Wrong email or password.",
    )


@receiver(user_locked_out, dispatch_uid="audit_lockout")
def _record_lockout(sender, request, username, ip_address, **kwargs):
    # django-axes signals again for every attempt made while locked; the trail keeps
    # one lockout per cool-off (the attempts themselves are failed sign-ins).
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if AuditEvent.objects.filter(
        action=Action.LOCKOUT,
        actor_email=(username or "")[:254],
        ip=ip_address,
        time__gte=since,
    ).exists():
        return
    user = _user_by_email(username)
    audit.record(
        action=Action.LOCKOUT,
        actor=user,
        actor_email=(username or "")[:254],
        target=user,
        message="Sign-in locked after repeated failures.",
    )
