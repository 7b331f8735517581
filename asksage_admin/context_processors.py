from django.conf import settings


def site(request):
    """Settings every template may show: demo banner, chat link, MFA requirement."""
    return {
        "DEMO_MODE": settings.DEMO_MODE,
        "CHAT_URL": settings.CHAT_URL,
        "REQUIRE_ADMIN_MFA": settings.REQUIRE_ADMIN_MFA,
    }
