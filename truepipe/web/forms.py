"""Forms of the web pages. They parse and present; every write goes through a service.

Choice lists for records (accounts, deals, people, contacts) validate against the
user's whole visible queryset but render at most CHOICE_LIMIT options, so a form
stays light for an admin who can see a million rows.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone

from truepipe.accounts.models import Account, Contact
from truepipe.activities.models import ActivityKind
from truepipe.core import visibility
from truepipe.core.errors import ServiceError
from truepipe.pipeline.models import ForecastCategory, Opportunity, Stage, StageKind

User = get_user_model()
CHOICE_LIMIT = 300


def person_label(user: Any) -> str:
    return user.get_full_name() or user.username


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return person_label(obj)


def limit_choices(
    field: forms.ModelChoiceField, queryset: QuerySet, selected: Any = None, empty_label: str = "—"
) -> None:
    """Render only the first CHOICE_LIMIT rows (plus the selected one); validation still uses `queryset`."""
    field.queryset = queryset
    rows = list(queryset[:CHOICE_LIMIT])
    selected_pk = getattr(selected, "pk", selected)
    if selected_pk not in (None, "") and all(str(row.pk) != str(selected_pk) for row in rows):
        rows.extend(queryset.filter(pk=selected_pk))
    choices: list[tuple[Any, str]] = (
        [] if isinstance(field, forms.ModelMultipleChoiceField) else [("", empty_label)]
    )
    choices += [(row.pk, field.label_from_instance(row)) for row in rows]
    field.widget.choices = choices


def apply_service_error(form: forms.Form, error: ServiceError) -> None:
    """Show a refused write on the form: its message on top, its per-field notes at the fields."""
    for name, note in error.fields.items():
        if name in form.fields:
            form.add_error(name, note)
    form.add_error(None, error.message)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


def visible_accounts(user: Any) -> QuerySet[Account]:
    return visibility.visible(user, Account).order_by("name", "id")


def visible_open_deals(user: Any) -> QuerySet[Opportunity]:
    return (
        visibility.visible(user, Opportunity)
        .filter(stage__kind=StageKind.OPEN)
        .select_related("account")
        .order_by("name", "id")
    )


class DealChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} · {obj.account.name}" if obj.account_id else obj.name


def opportunity_field(name: str, user: Any, selected: Any = None) -> forms.Field:
    """The form field for one writable opportunity attribute (shared by the edit form and the board)."""
    model_field = Opportunity._meta.get_field(name)
    label = str(getattr(model_field, "verbose_name", name)).capitalize()
    field: forms.Field
    if name == "account":
        field = forms.ModelChoiceField(queryset=Account.objects.none(), required=False, label=label)
        limit_choices(field, visible_accounts(user), selected)
    elif name == "owner":
        field = PersonChoiceField(queryset=User.objects.none(), label=label)
        limit_choices(field, visibility.assignable_owners(user).order_by("first_name", "last_name"), selected)
    elif name == "stage":
        field = forms.ModelChoiceField(queryset=Stage.objects.filter(is_active=True), label=label)
    elif name == "amount":
        field = forms.DecimalField(
            required=False, min_value=0, max_digits=16, decimal_places=2, label=label,
            widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        )  # fmt: skip
    elif name in ("close_date", "next_step_date"):
        field = forms.DateField(required=False, label=label, widget=DateInput())
    elif name == "probability":
        field = forms.IntegerField(
            required=False, min_value=0, max_value=100, label="Probability (%)",
            help_text="Leave empty to use the stage's default.",
        )  # fmt: skip
    elif name == "forecast_category":
        field = forms.ChoiceField(choices=ForecastCategory.choices, label="Forecast category")
    elif name == "currency":
        field = forms.CharField(max_length=3, min_length=3, label=label)
    else:
        max_length = getattr(model_field, "max_length", None)
        field = forms.CharField(required=False, max_length=max_length, label=label)
    return field


EDIT_FIELDS = (
    "name",
    "account",
    "owner",
    "stage",
    "amount",
    "currency",
    "close_date",
    "probability",
    "forecast_category",
    "next_step",
    "next_step_date",
    "source",
    "competitor",
    "lost_reason",
)
CREATE_FIELDS = ("name", "account", "owner", "stage", "amount", "currency", "close_date", "next_step")


class OpportunityForm(forms.Form):
    """Create or edit a deal. On edit the hidden `version` becomes the service's expected_version."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, user: Any, instance: Opportunity | None = None, **kwargs: Any):
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                name: getattr(instance, f"{name}_id" if name in ("account", "owner", "stage") else name)
                for name in EDIT_FIELDS
            }
            kwargs["initial"]["version"] = instance.version
            if not instance.probability_overridden:
                kwargs["initial"]["probability"] = None
        super().__init__(*args, **kwargs)
        self.instance = instance
        names = EDIT_FIELDS if instance is not None else CREATE_FIELDS
        for name in names:
            selected = self.initial.get(name) or (self.data.get(name) if self.is_bound else None)
            self.fields[name] = opportunity_field(name, user, selected)
        self.fields["name"].required = True
        self.fields["name"].widget.attrs["autofocus"] = True
        if instance is None:
            self.fields["owner"].initial = user.pk
            self.fields["currency"].initial = "USD"
            self.fields["stage"].initial = (
                Stage.objects.filter(kind=StageKind.OPEN, is_active=True).values_list("pk", flat=True).first()
            )

    def changes(self) -> dict[str, Any]:
        """The cleaned values in the service's vocabulary; on edit, only the fields the user changed.

        Sending unchanged fields would let a stale form re-assert old values (the forecast
        category, say, which the service derives from a new stage unless one is given).
        """
        data = {name: self.cleaned_data.get(name) for name in self.fields if name != "version"}
        for name in ("next_step", "source", "competitor", "lost_reason", "currency"):
            if name in data and data[name] is None:
                data[name] = ""
        if "currency" in data:
            data["currency"] = (data["currency"] or "").upper()
        if self.instance is None:
            return data
        deal = self.instance
        current = {name: getattr(deal, name) for name in data}
        if not deal.probability_overridden:
            current["probability"] = None
        return {name: value for name, value in data.items() if value != current[name]}


class StageFieldsForm(forms.Form):
    """What a board drop asks for: exactly the fields the target stage misses."""

    opportunity = forms.IntegerField(widget=forms.HiddenInput)
    stage = forms.IntegerField(widget=forms.HiddenInput)
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    asked = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, user: Any, asked: list[str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.asked_fields = asked
        self.fields["asked"].initial = ",".join(asked)
        for name in asked:
            field = opportunity_field(name, user)
            field.required = True
            self.fields[name] = field

    def extra(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in self.asked_fields}


class PipelineFilterForm(forms.Form):
    STATUS_CHOICES = [
        ("open", "Open"),
        ("closed", "Closed"),
        ("won", "Won"),
        ("lost", "Lost"),
        ("all", "All"),
    ]

    q = forms.CharField(required=False, label="Search", max_length=100)
    owner = PersonChoiceField(queryset=User.objects.none(), required=False)
    stage = forms.ModelChoiceField(queryset=Stage.objects.all(), required=False, empty_label="Any stage")
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, initial="open")
    close_from = forms.DateField(required=False, label="Closing from", widget=DateInput())
    close_to = forms.DateField(required=False, label="to", widget=DateInput())
    sort = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        selected = self.data.get("owner") if self.is_bound else None
        people = visibility.visible_users(user).order_by("first_name", "last_name")
        limit_choices(self.fields["owner"], people, selected, empty_label="Anyone")  # type: ignore[arg-type]


class BulkForm(forms.Form):
    ACTIONS = [("mark_lost", "Mark lost"), ("change_owner", "Change owner"), ("move_stage", "Move to stage")]

    action = forms.ChoiceField(choices=ACTIONS)
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[], label="Deals")
    lost_reason = forms.CharField(required=False, max_length=255, label="Lost reason")
    owner = PersonChoiceField(queryset=User.objects.none(), required=False, label="New owner")
    stage = forms.ModelChoiceField(
        queryset=Stage.objects.filter(is_active=True, kind=StageKind.OPEN),
        required=False,
        label="New stage",
        empty_label="Choose…",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Any integer is accepted here; the view resolves ids through visibility.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()  # type: ignore[attr-defined]
        selected = self.data.get("owner") if self.is_bound else None
        limit_choices(
            self.fields["owner"],  # type: ignore[arg-type]
            visibility.assignable_owners(user).order_by("first_name"),
            selected,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if action == "mark_lost" and not (data.get("lost_reason") or "").strip():
            self.add_error("lost_reason", "Say why these deals were lost.")
        if action == "change_owner" and not data.get("owner"):
            self.add_error("owner", "Choose the new owner.")
        if action == "move_stage" and not data.get("stage"):
            self.add_error("stage", "Choose the stage.")
        return data


def now_local_minutes() -> Any:
    return timezone.localtime().replace(second=0, microsecond=0)


class LogTouchForm(forms.Form):
    """The quick "log a touch" form: a few seconds of typing, no more."""

    kind = forms.ChoiceField(
        choices=ActivityKind.choices, initial=ActivityKind.CALL, widget=forms.RadioSelect
    )
    opportunity = DealChoiceField(queryset=Opportunity.objects.none(), required=False, label="Deal")
    occurred_at = forms.DateTimeField(
        label="When",
        widget=DateTimeInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    )
    subject = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"placeholder": "What happened?"}))
    body = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Notes")
    participants = forms.ModelMultipleChoiceField(queryset=Contact.objects.none(), required=False)

    def __init__(self, *args: Any, user: Any, opportunity: Opportunity | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["occurred_at"].initial = now_local_minutes
        deal = self.fields["opportunity"]
        selected = (
            opportunity.pk if opportunity else (self.data.get("opportunity") if self.is_bound else None)
        )
        own_first = visible_open_deals(user)
        limit_choices(deal, own_first, selected)  # type: ignore[arg-type]
        if opportunity is not None:
            deal.initial = opportunity.pk
        contacts = visibility.visible(user, Contact).order_by("last_name", "first_name", "id")
        participants: forms.ModelMultipleChoiceField = self.fields["participants"]  # type: ignore[assignment]
        if opportunity is not None and opportunity.account_id:
            shown = contacts.filter(account_id=opportunity.account_id)
            participants.queryset = contacts
            participants.widget.choices = [(c.pk, str(c)) for c in shown[:CHOICE_LIMIT]]
        else:
            limit_choices(participants, contacts)
        self.fields["subject"].widget.attrs["autofocus"] = True


class AccountForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    name = forms.CharField(max_length=200)
    domains = forms.CharField(
        required=False, help_text="Web or e-mail domains, separated by commas (acme.com, acme.de)."
    )
    industry = forms.CharField(required=False, max_length=120)
    employees = forms.IntegerField(required=False, min_value=0)
    owner = PersonChoiceField(queryset=User.objects.none())
    parent = forms.ModelChoiceField(queryset=Account.objects.none(), required=False, label="Parent account")

    def __init__(self, *args: Any, user: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["owner"].initial = user.pk
        owners = visibility.assignable_owners(user).order_by("first_name")
        limit_choices(self.fields["owner"], owners, self.initial.get("owner"))  # type: ignore[arg-type]
        selected = (self.data.get("parent") if self.is_bound else None) or self.initial.get("parent")
        limit_choices(self.fields["parent"], visible_accounts(user), selected)  # type: ignore[arg-type]
        self.fields["name"].widget.attrs["autofocus"] = True

    @staticmethod
    def initial_for(account: Account) -> dict[str, Any]:
        return {
            "version": account.version,
            "name": account.name,
            "domains": ", ".join(d.domain for d in account.domains.all()),
            "industry": account.industry,
            "employees": account.employees,
            "owner": account.owner_id,
            "parent": account.parent_id,
        }

    def domain_list(self) -> list[str]:
        return [d.strip() for d in (self.cleaned_data.get("domains") or "").split(",") if d.strip()]


class ContactForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    first_name = forms.CharField(required=False, max_length=100)
    last_name = forms.CharField(required=False, max_length=100)
    emails = forms.CharField(required=False, help_text="Separate several addresses with commas.")
    title = forms.CharField(required=False, max_length=120)
    phone = forms.CharField(required=False, max_length=50)
    account = forms.ModelChoiceField(queryset=Account.objects.none(), required=False)
    owner = PersonChoiceField(queryset=User.objects.none())

    def __init__(self, *args: Any, user: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["owner"].initial = user.pk
        owners = visibility.assignable_owners(user).order_by("first_name")
        limit_choices(self.fields["owner"], owners, self.initial.get("owner"))  # type: ignore[arg-type]
        selected = (self.data.get("account") if self.is_bound else None) or self.initial.get("account")
        limit_choices(self.fields["account"], visible_accounts(user), selected)  # type: ignore[arg-type]
        self.fields["first_name"].widget.attrs["autofocus"] = True

    @staticmethod
    def initial_for(contact: Contact) -> dict[str, Any]:
        names = ("first_name", "last_name", "title", "phone")
        initial: dict[str, Any] = {name: getattr(contact, name) for name in names}
        initial.update(
            version=contact.version,
            emails=", ".join(e.email for e in contact.emails.all()),
            account=contact.account_id,
            owner=contact.owner_id,
        )
        return initial

    def email_list(self) -> list[str]:
        return [e.strip() for e in (self.cleaned_data.get("emails") or "").split(",") if e.strip()]
