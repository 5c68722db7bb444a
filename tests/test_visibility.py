"""The one scoping function, for every role: who sees and who may change what."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from truepipe.accounts import services as account_services
from truepipe.accounts.models import Account, Contact
from truepipe.activities import services as activity_services
from truepipe.activities.models import Activity
from truepipe.core.models import Via
from truepipe.core.visibility import assignable_owners, can_change, visible, visible_users
from truepipe.people.models import Role
from truepipe.people.services import create_person, set_manager
from truepipe.pipeline.models import Opportunity


@pytest.fixture
def world(org):
    org.ravi_contact = account_services.create_contact(
        org.ravi,
        first_name="Ann",
        last_name="Acme",
        account=org.acme,
        emails=["ann@acme.example"],
        via=Via.FORM,
    )
    org.owen_contact = account_services.create_contact(
        org.owen, first_name="Gus", last_name="Globex", account=org.globex, via=Via.FORM
    )
    org.ravi_call = activity_services.log_activity(
        org.ravi, kind="call", subject="Pricing call", opportunity=org.ravi_open, via=Via.FORM
    )
    org.won_meeting = activity_services.log_activity(
        org.ravi, kind="meeting", subject="Kick-off", opportunity=org.ravi_won, via=Via.FORM
    )
    org.owen_call = activity_services.log_activity(
        org.owen, kind="call", subject="Intro", opportunity=org.owen_open, via=Via.FORM
    )
    return org


def names(user, model, action="view") -> set[str]:
    return {str(obj) for obj in visible(user, model, action)}


EVERYONE_OPPS = {"Acme renewal", "Acme expansion", "Globex pilot"}


@pytest.mark.parametrize(
    ("persona", "opportunities", "accounts", "contacts", "activities"),
    [
        (
            "ravi",
            {"Acme renewal", "Acme expansion"},
            {"Acme Corp"},
            {"Ann Acme"},
            {"Call: Pricing call", "Meeting: Kick-off"},
        ),
        ("rita", set(), set(), set(), set()),
        (
            "maya",
            {"Acme renewal", "Acme expansion"},
            {"Acme Corp"},
            {"Ann Acme"},
            {"Call: Pricing call", "Meeting: Kick-off"},
        ),
        ("omar", {"Globex pilot"}, {"Globex"}, {"Gus Globex"}, {"Call: Intro"}),
        (
            "vera",
            EVERYONE_OPPS,
            {"Acme Corp", "Globex"},
            {"Ann Acme", "Gus Globex"},
            {"Call: Pricing call", "Meeting: Kick-off", "Call: Intro"},
        ),
        (
            "ada",
            EVERYONE_OPPS,
            {"Acme Corp", "Globex"},
            {"Ann Acme", "Gus Globex"},
            {"Call: Pricing call", "Meeting: Kick-off", "Call: Intro"},
        ),
        (
            "eli",
            EVERYONE_OPPS,
            {"Acme Corp", "Globex"},
            {"Ann Acme", "Gus Globex"},
            {"Call: Pricing call", "Meeting: Kick-off", "Call: Intro"},
        ),
        ("dana", {"Acme expansion"}, {"Acme Corp"}, {"Ann Acme"}, {"Meeting: Kick-off"}),
    ],
)
def test_each_role_sees_exactly_its_records(world, persona, opportunities, accounts, contacts, activities):
    user = getattr(world, persona)
    assert names(user, Opportunity) == opportunities
    assert names(user, Account) == accounts
    assert names(user, Contact) == contacts
    assert names(user, Activity) == activities


@pytest.mark.parametrize(
    ("persona", "may_change"),
    [
        ("ravi", {"Acme renewal", "Acme expansion"}),
        ("maya", {"Acme renewal", "Acme expansion"}),
        ("omar", {"Globex pilot"}),
        ("ada", EVERYONE_OPPS),
        ("eli", set()),
        ("dana", set()),
    ],
)
def test_only_owners_their_managers_and_admins_may_change_deals(world, persona, may_change):
    assert names(getattr(world, persona), Opportunity, "change") == may_change


def test_anonymous_sees_nothing_and_changes_nothing(world):
    anonymous = AnonymousUser()
    for model in (Opportunity, Account, Contact, Activity):
        assert not visible(anonymous, model).exists()
    assert not can_change(anonymous, world.ravi_open)
    assert not visible_users(anonymous).exists()


def test_an_inactive_user_sees_nothing(world):
    world.ravi.is_active = False
    world.ravi.save()
    assert not visible(world.ravi, Opportunity).exists()


def test_a_user_without_a_sales_profile_sees_nothing(world, django_user_model):
    stranger = django_user_model.objects.create_user("stranger", password="x")
    assert not visible(stranger, Opportunity).exists()


def test_a_manager_sees_the_whole_subtree_at_any_depth(world):
    # Team lead under Maya with his own rep: Maya sees the grandchild's deals.
    lead = create_person(None, username="leo", role=Role.MANAGER, manager=world.maya)
    grandchild = create_person(None, username="gia", role=Role.REP, manager=lead)
    from truepipe.pipeline.services import create_opportunity

    create_opportunity(grandchild, name="Deep deal", via=Via.FORM)
    assert "Deep deal" in names(world.maya, Opportunity)
    assert "Deep deal" in names(world.vera, Opportunity)
    assert "Deep deal" not in names(world.omar, Opportunity)


def test_moving_a_rep_to_another_manager_moves_their_deals_with_them(world):
    set_manager(None, world.ravi, world.omar)
    assert "Acme renewal" in names(world.omar, Opportunity)
    assert "Acme renewal" not in names(world.maya, Opportunity)


def test_moving_a_manager_reroots_their_whole_team(world):
    set_manager(None, world.maya, world.omar)
    world.ravi.profile.refresh_from_db()
    assert world.ravi.profile.path == f"{world.omar.profile.path}{world.maya.pk}/{world.ravi.pk}/"
    assert "Acme renewal" in names(world.omar, Opportunity)


def test_a_reporting_loop_is_refused(world):
    from truepipe.core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        set_manager(None, world.maya, world.ravi)


def test_reps_may_assign_only_to_themselves_and_managers_to_their_subtree(world):
    assert set(assignable_owners(world.ravi).values_list("username", flat=True)) == {"ravi"}
    assert set(assignable_owners(world.maya).values_list("username", flat=True)) == {"maya", "ravi", "rita"}
    assert not assignable_owners(world.eli).exists()


def test_a_deleted_deal_is_invisible_to_everyone(world):
    from truepipe.pipeline.services import delete_opportunity

    delete_opportunity(world.ravi, world.ravi_open, via=Via.FORM)
    for persona in ("ravi", "maya", "vera", "ada", "eli"):
        assert "Acme renewal" not in names(getattr(world, persona), Opportunity)


@pytest.mark.parametrize("persona", ["ravi", "rita", "maya", "omar", "vera", "ada", "eli", "dana"])
def test_the_owners_whose_open_deals_a_person_sees_agree_with_their_visible_deals(world, persona):
    """Capture matches many people's mail at once with open_deal_owners; it must say what visible() says."""
    from truepipe.core.visibility import open_deal_owners
    from truepipe.pipeline.models import StageKind

    user = getattr(world, persona)
    open_deals = Opportunity.objects.filter(stage__kind=StageKind.OPEN, deleted_at__isnull=True)
    owners = open_deal_owners(user)
    by_scope = {d.pk for d in open_deals if owners is None or d.owner_id in owners}

    assert by_scope == set(
        visible(user, Opportunity).filter(stage__kind=StageKind.OPEN).values_list("pk", flat=True)
    )
