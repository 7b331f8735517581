from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import Organization, User
from tokens.models import AIModel
from tokens.services import allocation_set_limit, purchase_record

PASSWORD = "correct-horse-battery-9"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    status = Organization.Status.ACTIVE
    activated_at = factory.LazyFunction(timezone.now)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    organization = factory.SubFactory(OrganizationFactory)
    role = User.Role.USER
    email_verified_at = factory.LazyFunction(timezone.now)
    terms_accepted_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class AdminFactory(UserFactory):
    role = User.Role.ADMIN


class AIModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIModel
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"model-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    input_rate = Decimal("1.0")
    output_rate = Decimal("1.0")


def fund(org, *, inference=10_000_000, embedding=10_000_000, actor=None):
    """Record a purchase for ``org`` through the service (lots of TOKEN_LOT)."""
    return purchase_record(
        actor=actor,
        organization=org,
        payer_email="billing@example.com",
        inference_tokens=inference,
        embedding_tokens=embedding,
        starts_on=timezone.now().date().replace(day=1),
    )


def give(user, limit, token_type="inference", actor=None):
    """Set a user's limit through the service (the minimum check waived)."""
    return allocation_set_limit(
        actor=actor,
        user=user,
        token_type=token_type,
        limit=limit,
        allow_below_minimum=True,
    )
