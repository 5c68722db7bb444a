"""Build the demo sales organisation with months of history, entirely through the service layer.

Every person, account, deal, stage move, close-date push and logged activity is
written by the same functions the web pages, API and importer call, with the
historic moment passed as `at` / `logged_at`, so field history, versions and
hooks look exactly as if the region had used truepipe for months.

How a deal is made: the generator first decides what *really* happened (when the
conversation started, every customer touch, each stage reached, the outcome and
its date), then what the rep *entered* and when, which is where the behaviour
profiles differ: the rainmaker enters his deals days before they close and logs
a fraction of his meetings a week late; the meticulous logger enters everything
at once and cannot close. Entries dated after "now" are simply not made yet, which
leaves a live open pipeline.

Two habits of care decide how a pipeline reads to the discipline rules: a rep who
logs a touch sets the deal's next step when the last one is done (as often as
their `fill`), and a deal that died without being closed in the CRM stays open,
rotting, until a pipeline review with the manager turns it up (never, for the
rainmaker). The new hire is sloppy for the first half of the history, then
coached: his habits improve over most of the second half and his reviews start,
so his discipline score climbs over the back-filled record (`truepipe.demo.backfill`).

Everything is drawn from `random.Random` instances seeded from the seed and a
stable name, so the same seed and the same `today` produce the same database.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.contrib.auth.hashers import make_password
from django.db import transaction

from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.core.models import Via
from truepipe.demo import names
from truepipe.people import services as people_services
from truepipe.people.models import Role
from truepipe.pipeline import services as pipeline_services
from truepipe.pipeline.models import Product, Stage

DEMO_PASSWORD = "demo"
OPEN_STAGES = ("Prospecting", "Qualification", "Discovery", "Proposal", "Negotiation")
PROPOSAL = OPEN_STAGES.index("Proposal")
NEGOTIATION = OPEN_STAGES.index("Negotiation")


class DemoError(Exception):
    """The database is not one the demo can fill; the message says why."""


# --- Behaviour profiles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hygiene:
    """How a rep keeps the CRM: what share of touches they log, how late, how complete."""

    log_share: float  # share of customer touches that ever get logged
    instant_share: float  # of those, the share logged within the hour
    lag_hours: float  # median lag of the others
    fill: float  # chance optional fields (next step and date, source, competitor) are filled
    update_days: float  # mean delay between a real stage move and the CRM update
    skip: float  # chance a stage move is not entered (the next update jumps over it)
    entry_days: float  # mean delay between the first conversation and creating the deal

    def blend(self, other: Hygiene, weight: float) -> Hygiene:
        """This hygiene moved `weight` (0..1) of the way towards `other`."""
        return Hygiene(*(a + (b - a) * weight for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class Profile:
    """How a rep sells and how they keep the CRM. `improves_to` makes hygiene change over the window."""

    key: str
    label: str
    deals_per_month: float
    win_rate: float
    deal_size: float
    cycle_days: float
    touch_every_days: float
    hygiene: Hygiene
    improves_to: Hygiene | None = None
    surprise_share: float = 0.0  # won deals first entered a few days before they close
    unentered_losses: float = 0.0  # lost deals never entered at all
    late_losses: float = 0.3  # share of losses that die in Proposal or Negotiation
    abandoned_losses: float = 0.1  # lost deals left open in the CRM (they rot until a review)
    optimism_days: float = 20.0  # how far before the real close the first close date is
    quota: int = 150_000  # per quarter
    # The stretch of the history (as fractions of it) over which hygiene moves to `improves_to`.
    improves_between: tuple[float, float] = (0.0, 1.0)
    # Pipeline reviews with the manager, every so many days (None: never), from this point of the
    # history on: a review is when a dead deal left open in the CRM finally gets marked lost.
    review_every_days: float | None = 30.0
    reviews_from: float = 0.0
    abandoned_losses_improved: float = 0.0  # what `abandoned_losses` becomes as hygiene improves

    def improvement(self, progress: float) -> float:
        """How far (0..1) the rep has moved towards `improves_to` at this point of the history."""
        if self.improves_to is None:
            return 0.0
        first, last = self.improves_between
        weight = (progress - first) / (last - first) if last > first else float(progress >= first)
        return min(1.0, max(0.0, weight))

    def hygiene_at(self, progress: float) -> Hygiene:
        if self.improves_to is None:
            return self.hygiene
        return self.hygiene.blend(self.improves_to, self.improvement(progress))

    def abandoned_at(self, progress: float) -> float:
        weight = self.improvement(progress)
        return self.abandoned_losses + (self.abandoned_losses_improved - self.abandoned_losses) * weight


RAINMAKER = Profile(
    key="rainmaker",
    label="rainmaker",
    deals_per_month=3.0,
    win_rate=0.65,
    deal_size=100_000,
    cycle_days=55,
    touch_every_days=4,
    hygiene=Hygiene(
        log_share=0.15,
        instant_share=0.0,
        lag_hours=130,
        fill=0.1,
        update_days=8,
        skip=0.8,
        entry_days=25,
    ),
    surprise_share=0.75,
    unentered_losses=0.5,
    late_losses=0.3,
    abandoned_losses=0.6,
    optimism_days=10,
    quota=200_000,
    review_every_days=None,  # his manager never goes through his pipeline with him
)
LOGGER = Profile(
    key="logger",
    label="meticulous logger",
    deals_per_month=4.5,
    win_rate=0.1,
    deal_size=32_000,
    cycle_days=80,
    touch_every_days=3,
    hygiene=Hygiene(
        log_share=0.99,
        instant_share=0.92,
        lag_hours=1.5,
        fill=1.0,
        update_days=0.2,
        skip=0.0,
        entry_days=0.3,
    ),
    late_losses=0.85,
    abandoned_losses=0.0,
    optimism_days=40,
    review_every_days=7,
)
ALL_ROUNDER = Profile(
    key="all_rounder",
    label="steady all-rounder",
    deals_per_month=4.0,
    win_rate=0.38,
    deal_size=50_000,
    cycle_days=60,
    touch_every_days=5,
    hygiene=Hygiene(
        log_share=0.85,
        instant_share=0.65,
        lag_hours=4,
        fill=0.75,
        update_days=0.8,
        skip=0.08,
        entry_days=1.5,
    ),
    abandoned_losses=0.03,
    optimism_days=12,
    quota=170_000,
    review_every_days=14,
)
NEW_HIRE = Profile(
    key="new_hire",
    label="new hire, improving",
    deals_per_month=3.2,
    win_rate=0.25,
    deal_size=30_000,
    cycle_days=60,
    touch_every_days=5,
    hygiene=Hygiene(
        log_share=0.45,
        instant_share=0.05,
        lag_hours=70,
        fill=0.2,
        update_days=6,
        skip=0.45,
        entry_days=12,
    ),
    improves_to=Hygiene(
        log_share=0.95,
        instant_share=0.85,
        lag_hours=2,
        fill=0.85,
        update_days=0.4,
        skip=0.03,
        entry_days=0.8,
    ),
    abandoned_losses=0.3,
    abandoned_losses_improved=0.03,
    quota=90_000,
    # Sloppy for his first months; coached from 55% of the history on, good in its last weeks.
    improves_between=(0.55, 0.85),
    review_every_days=14,  # fortnightly pipeline reviews once his coaching starts
    reviews_from=0.65,
)


def ordinary_profile(rng: random.Random) -> Profile:
    """A rep with no story of their own: middling numbers, middling hygiene, some noise."""
    return Profile(
        key="ordinary",
        label="",
        deals_per_month=rng.uniform(3.2, 4.4),
        win_rate=rng.uniform(0.26, 0.38),
        deal_size=rng.uniform(35_000, 55_000),
        cycle_days=rng.uniform(50, 75),
        touch_every_days=rng.uniform(4.5, 7),
        hygiene=Hygiene(
            log_share=rng.uniform(0.6, 0.85),
            instant_share=rng.uniform(0.2, 0.5),
            lag_hours=rng.uniform(8, 36),
            fill=rng.uniform(0.45, 0.75),
            update_days=rng.uniform(1, 4),
            skip=rng.uniform(0.1, 0.3),
            entry_days=rng.uniform(2, 8),
        ),
        abandoned_losses=rng.uniform(0.03, 0.15),
        late_losses=rng.uniform(0.2, 0.4),
        optimism_days=rng.uniform(10, 30),
        review_every_days=rng.uniform(14, 30),  # fortnightly to monthly pipeline reviews
    )


# --- The cast -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    username: str
    full_name: str
    role: str
    title: str
    note: str = ""  # what to look for when logged in as them
    team: str = ""
    manager: str = ""
    profile: Profile | None = None


TEAMS = {
    "East": "America/New_York",
    "Central": "America/Chicago",
    "West": "America/Los_Angeles",
}

LEADERSHIP = (
    Person("edgar", "Edgar Brandt", Role.EXEC, "Chief Revenue Officer", "the VP's boss: reads everything"),
    Person("victoria", "Victoria Hale", Role.MANAGER, "VP Sales, Americas", "VP: the whole region"),
    Person(
        "maria",
        "Maria Santos",
        Role.MANAGER,
        "Sales Manager, East",
        "manager of the rainmaker, lenient with him",
        team="East",
        manager="victoria",
    ),
    Person(
        "marcus",
        "Marcus Webb",
        Role.MANAGER,
        "Sales Manager, Central",
        "manager of the meticulous logger",
        team="Central",
        manager="victoria",
    ),
    Person(
        "nina",
        "Nina Patel",
        Role.MANAGER,
        "Sales Manager, West",
        "manager of the new hire",
        team="West",
        manager="victoria",
    ),
    Person("olga", "Olga Ivanova", Role.ADMIN, "Sales Operations", "admin: stages, rules, imports"),
    Person("devon", "Devon Price", Role.DELIVERY, "Delivery Lead", "delivery: sees won deals"),
)

STAR_REPS = (
    Person("rick", "Rick Alvarez", Role.REP, "Senior Account Executive", team="East", profile=RAINMAKER),
    Person("lena", "Lena Fischer", Role.REP, "Account Executive", team="Central", profile=LOGGER),
    Person("sam", "Sam Okafor", Role.REP, "Account Executive", team="East", profile=ALL_ROUNDER),
    Person("noah", "Noah Kim", Role.REP, "Associate Account Executive", team="West", profile=NEW_HIRE),
)

# Ordinary reps, filled in round-robin across the teams after the stars.
ORDINARY_REPS = (
    ("alex", "Alex Turner"),
    ("priya", "Priya Chandra"),
    ("jonas", "Jonas Weber"),
    ("carla", "Carla Mendes"),
    ("tariq", "Tariq Farah"),
    ("grace", "Grace Hart"),
    ("luis", "Luis Navarro"),
    ("keiko", "Keiko Tanaka"),
    ("ben", "Ben Walsh"),
    ("amara", "Amara Obi"),
    ("felix", "Felix Novak"),
    ("rosa", "Rosa Silva"),
    ("hugo", "Hugo Moreau"),
    ("yara", "Yara Ibrahim"),
    ("colin", "Colin Reed"),
    ("mei", "Mei Zhang"),
)
MANAGER_OF_TEAM = {"East": "maria", "Central": "marcus", "West": "nina"}
MIN_REPS = len(STAR_REPS) + 1
MAX_REPS = len(STAR_REPS) + len(ORDINARY_REPS)


def cast(reps: int, seed: int) -> list[Person]:
    """Everyone in the demo organisation: leadership, the four story reps, then ordinary reps."""
    people = list(LEADERSHIP)
    for person in STAR_REPS:
        label = person.profile.label if person.profile else ""
        people.append(replace(person, manager=MANAGER_OF_TEAM[person.team], note=label))
    team_names = list(TEAMS)
    for index, (username, full_name) in enumerate(ORDINARY_REPS[: reps - len(STAR_REPS)]):
        team = team_names[(index + 1) % len(team_names)]
        rng = random.Random(f"{seed}:profile:{username}")
        people.append(
            Person(
                username,
                full_name,
                Role.REP,
                "Account Executive",
                "ordinary rep",
                team=team,
                manager=MANAGER_OF_TEAM[team],
                profile=ordinary_profile(rng),
            )
        )
    return people


# --- Time helpers ---------------------------------------------------------------------------------


def working_day(day: date) -> date:
    """The day itself if it is Monday..Friday, else the next Monday."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def work_moment(rng: random.Random, day: date, tz: ZoneInfo, start: float = 8.5, end: float = 18) -> datetime:
    """A random moment inside working hours on `day` (moved to a working day), in UTC."""
    day = working_day(day)
    hours = rng.uniform(start, end)
    local = datetime.combine(day, time(0), tzinfo=tz) + timedelta(hours=hours)
    return local.astimezone(UTC).replace(microsecond=0)


def after(rng: random.Random, moment: datetime, mean_days: float, tz: ZoneInfo) -> datetime:
    """A working moment roughly `mean_days` (exponential) after `moment`, never before it."""
    if mean_days < 0.05:
        return in_working_hours(rng, moment + timedelta(minutes=rng.randint(2, 40)), tz)
    delay = rng.expovariate(1 / mean_days)
    if delay < 0.3:
        return in_working_hours(rng, moment + timedelta(hours=delay * 24), tz)
    candidate = work_moment(rng, (moment + timedelta(days=delay)).astimezone(tz).date(), tz)
    return in_working_hours(rng, max(candidate, moment + timedelta(minutes=5)), tz)


def in_working_hours(rng: random.Random, moment: datetime, tz: ZoneInfo) -> datetime:
    """`moment` if it falls in the rep's working day, else early the next working morning."""
    local = moment.astimezone(tz)
    if local.weekday() < 5 and 8 <= local.hour < 19:
        return moment
    day = local.date() + timedelta(days=1 if local.hour >= 19 else 0)
    return work_moment(rng, day, tz, start=8.5, end=10)


# --- Plans: what really happened and what the rep entered -----------------------------------------


@dataclass(order=True)
class Event:
    at: datetime
    seq: int
    kind: str = field(compare=False)  # "create", "update", "products", "touch"
    data: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class DealPlan:
    rep: Any
    account: Any
    contacts: list[Any]
    name: str
    events: list[Event]


@dataclass
class Options:
    seed: int = 42
    today: date | None = None
    now: datetime | None = None
    months: int = 7
    reps: int = 15
    accounts_per_rep: int = 13


@dataclass
class Result:
    people: list[Person]
    users: dict[str, Any]
    start: date
    today: date
    now: datetime  # the moment the history stops: entries dated later are not made yet
    deals: int = 0
    activities: int = 0


class Generator:
    """Builds the whole organisation. Call `run()` once on an empty database."""

    def __init__(self, options: Options, progress: Callable[[int], Any] | None = None):
        self.options = options
        self.now = options.now or datetime.now(UTC).replace(microsecond=0)
        self.today = options.today or self.now.date()
        if options.today is not None and options.now is None:
            # A fixed "today" makes the data reproducible: the day's entries stop at noon UTC.
            self.now = datetime.combine(options.today, time(12), tzinfo=UTC)
        self.start = self.today - relativedelta(months=options.months)
        self.people = cast(options.reps, options.seed)
        self.users: dict[str, Any] = {}
        self.progress = progress
        self.stages: dict[str, Stage] = {}
        self.open_stage_names: dict[int, str] = {}
        self.products: list[Product] = []
        self._seq = 0
        # Per rep: a second random stream for the habits of care (next steps kept current, dead
        # deals cleaned out at pipeline reviews), so they leave the selling story untouched.
        self._care = random.Random(0)
        self._review_phase = 0.0

    # Public API

    def plan_count(self) -> int:
        """Roughly how many deals will be generated, for sizing a progress bar."""
        months = self.options.months
        return sum(deal_count(p.profile, months) for p in self.people if p.profile)

    def run(self) -> Result:
        result = Result(self.people, self.users, self.start, self.today, self.now)
        self.stages = {stage.name: stage for stage in Stage.objects.all()}
        self.open_stage_names = {self.stages[name].pk: name for name in OPEN_STAGES if name in self.stages}
        missing = [name for name in (*OPEN_STAGES, "Won", "Lost") if name not in self.stages]
        if missing:
            raise DemoError(
                f"The demo needs the default pipeline stages, and these are missing: {', '.join(missing)}."
            )
        with transaction.atomic():
            self._people()
            self._products()
        accounts = self._accounts()
        for person in self.people:
            if person.profile is None:
                continue
            with transaction.atomic():
                deals, activities = self._rep_history(person, accounts[person.username])
            result.deals += deals
            result.activities += activities
        return result

    # People, quotas, catalogue

    def _people(self) -> None:
        # One hash for the one shared password: hashing it per user costs seconds each time.
        password_hash = make_password(DEMO_PASSWORD)
        for person in self.people:
            self.users[person.username] = people_services.create_person(
                None,
                username=person.username,
                email=f"{person.username}@truepipe-demo.example",
                full_name=person.full_name,
                role=person.role,
                manager=self.users.get(person.manager),
                team=person.team or None,
                password_hash=password_hash,
                time_zone=TEAMS.get(person.team, "America/New_York"),
                title=person.title,
            )
        quarter = date(self.start.year, 3 * ((self.start.month - 1) // 3) + 1, 1)
        index = 0
        while quarter <= self.today:
            end = quarter + relativedelta(months=3) - timedelta(days=1)
            for person in self.people:
                if person.profile is None:
                    continue
                amount = person.profile.quota
                if person.profile.key == "new_hire":
                    amount = min(amount * (index + 1), 150_000)  # ramping up
                people_services.set_quota(
                    None, self.users[person.username], period_start=quarter, period_end=end, amount=amount
                )
            quarter = end + timedelta(days=1)
            index += 1

    def _products(self) -> None:
        for name, code, family, price in names.PRODUCTS:
            self.products.append(
                pipeline_services.create_product(None, name=name, code=code, family=family, list_price=price)
            )

    # Accounts and contacts

    def _accounts(self) -> dict[str, list[tuple[Any, list[Any]]]]:
        """Each rep's book: accounts with one to four contacts each."""
        rng = random.Random(f"{self.options.seed}:accounts")
        reps = [p for p in self.people if p.profile is not None]
        stems = [(a, b) for a in names.STEM_A for b in names.STEM_B]
        rng.shuffle(stems)
        industries = list(names.INDUSTRIES)
        total = min(len(stems), len(reps) * self.options.accounts_per_rep)
        book: dict[str, list[tuple[Any, list[Any]]]] = {p.username: [] for p in reps}
        used_emails: set[str] = set()
        with transaction.atomic():
            for index in range(total):
                rep = reps[index % len(reps)]
                owner = self.users[rep.username]
                a, b = stems[index]
                word = industries[rng.randrange(len(industries))]
                name = f"{a}{b} {word}"
                domain = f"{a}{b}-{word}.example".lower()
                created = work_moment(rng, self.start - timedelta(days=rng.randint(20, 500)), ZoneInfo("UTC"))
                # Accounts, contacts and activities record no author beyond their owner, so the
                # system actor writes them: its per-row permission queries could not fail here.
                account = account_services.create_account(
                    None,
                    via=Via.DEMO,
                    at=created,
                    name=name,
                    industry=names.INDUSTRIES[word],
                    employees=int(math.exp(rng.uniform(math.log(40), math.log(20_000)))),
                    owner=owner,
                    domains=[domain],
                )
                contacts = []
                for _ in range(rng.randint(1, 4)):
                    first = rng.choice(names.FIRST_NAMES)
                    last = rng.choice(names.LAST_NAMES)
                    email = f"{first}.{last}@{domain}".lower()
                    if email in used_emails:
                        continue
                    used_emails.add(email)
                    contacts.append(
                        account_services.create_contact(
                            None,
                            via=Via.DEMO,
                            at=created + timedelta(days=rng.randint(0, 30)),
                            first_name=first,
                            last_name=last,
                            title=rng.choice(names.CONTACT_TITLES),
                            phone=f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                            account=account,
                            owner=owner,
                            emails=[email],
                        )
                    )
                book[rep.username].append((account, contacts))
        return book

    # One rep's months

    def _rep_history(self, person: Person, book: list[tuple[Any, list[Any]]]) -> tuple[int, int]:
        assert person.profile is not None
        rng = random.Random(f"{self.options.seed}:history:{person.username}")
        self._care = random.Random(f"{self.options.seed}:care:{person.username}")
        self._review_phase = self._care.uniform(0, person.profile.review_every_days or 1)
        user = self.users[person.username]
        tz = ZoneInfo(TEAMS[person.team])
        span = (self.today - self.start).days
        count = deal_count(person.profile, self.options.months)
        starts = sorted(rng.uniform(0, span - 3) for _ in range(count))
        deals = activities = 0
        # Wins are spread evenly over the rep's deals (a low-discrepancy sequence rather than a coin
        # per deal), so a small demo still shows each profile's win rate and not a lucky streak.
        phase = rng.random()
        for index, offset in enumerate(starts):
            account, contacts = book[rng.randrange(len(book))]
            first_touch = work_moment(rng, self.start + timedelta(days=offset), tz)
            p = person.profile.win_rate
            won = math.floor((index + 1) * p + phase) > math.floor(index * p + phase)
            plan = self._plan(rng, person, user, tz, account, contacts, first_touch, won)
            created, logged = self._apply(plan)
            deals += created
            activities += logged
            if self.progress:
                self.progress(1)
        return deals, activities

    def _progress_of(self, moment: datetime) -> float:
        span = max(1.0, (self.now - datetime.combine(self.start, time(0), tzinfo=UTC)).total_seconds())
        return (moment - datetime.combine(self.start, time(0), tzinfo=UTC)).total_seconds() / span

    def _event(self, at: datetime, event_kind: str, /, **data: Any) -> Event:
        self._seq += 1
        return Event(at, self._seq, event_kind, data)

    def _plan(
        self,
        rng: random.Random,
        person: Person,
        user: Any,
        tz: ZoneInfo,
        account: Any,
        contacts: list[Any],
        first_touch: datetime,
        won: bool,
    ) -> DealPlan:
        profile = person.profile
        assert profile is not None
        hygiene = profile.hygiene_at(self._progress_of(first_touch))
        last_open = NEGOTIATION if won else self._loss_stage(rng, profile)
        cycle = max(25.0, rng.gauss(profile.cycle_days, profile.cycle_days * 0.25))
        if not won:
            cycle *= (last_open + 1.5) / (NEGOTIATION + 1.5)
        # When each open stage was really reached, and when the deal really closed.
        reached = [first_touch]
        for index in range(1, last_open + 1):
            day = first_touch + timedelta(days=cycle * index / (last_open + 1) * rng.uniform(0.8, 1.1))
            reached.append(
                max(reached[-1] + timedelta(hours=2), work_moment(rng, day.astimezone(tz).date(), tz))
            )
        closed = max(
            reached[-1] + timedelta(days=1),
            work_moment(rng, (first_touch + timedelta(days=cycle)).astimezone(tz).date(), tz),
        )
        amount = Decimal(round(max(3000.0, rng.lognormvariate(math.log(profile.deal_size), 0.35)), -2))
        purpose = rng.choice(names.DEAL_PURPOSES)
        name = f"{account.name} – {purpose}"
        events: list[Event] = []

        # What the rep entered.
        surprise = won and rng.random() < profile.surprise_share
        unentered = not won and rng.random() < profile.unentered_losses
        abandoned = not won and rng.random() < profile.abandoned_at(self._progress_of(first_touch))
        if surprise:
            created = work_moment(rng, (closed - timedelta(days=rng.uniform(1, 7))).astimezone(tz).date(), tz)
            created = max(created, reached[0] + timedelta(hours=1))
            stage_index = min(1, last_open)
            events.append(self._create(rng, created, name, account, stage_index, None, None, hygiene, tz))
            win_at = after(rng, max(closed, created + timedelta(hours=3)), 1, tz)
            events.append(self._close_event(rng, win_at, closed, True, amount, hygiene, tz))
        elif not unentered:
            created = after(rng, first_touch, hygiene.entry_days, tz)
            created = min(created, closed - timedelta(hours=1))
            stage_index = (
                max(i for i, moment in enumerate(reached) if moment <= created)
                if created >= reached[0]
                else 0
            )
            close_guess = self._close_guess(rng, created, closed, profile.optimism_days)
            events.append(
                self._create(rng, created, name, account, stage_index, amount, close_guess, hygiene, tz)
            )
            # A rep who filled in the amount at once also gave the close date then, and keeps it
            # (pushing it as it passes) rather than guessing a new one on reaching Proposal.
            priced = "amount" in events[-1].data
            if priced:
                lines = self._lines(rng, amount)
                events.append(self._event(created + timedelta(minutes=1), "products", lines=lines))
            events.extend(
                self._progress_events(
                    rng, profile, reached, stage_index, created, amount, closed, hygiene, tz, priced
                )
            )
            current_close = close_guess if stage_index >= PROPOSAL else None
            events.extend(self._push_events(rng, events, current_close, created, closed, hygiene, tz))
            if not abandoned:
                last = max(e.at for e in events)
                close_at = max(after(rng, closed, hygiene.update_days, tz), last + timedelta(minutes=10))
                # The amount is in the deal by now; it is carried only for a deal that skipped
                # every stage needing it (the services refuse Won without one).
                events.append(
                    self._close_event(rng, close_at, closed, won, None, hygiene, tz, fallback=amount)
                )
            elif (review := self._review_after(profile, closed, tz)) is not None:
                # Left open after it died, until a pipeline review with the manager turns it up.
                last = max(e.at for e in events)
                review = max(review, last + timedelta(minutes=10))
                events.append(self._close_event(self._care, review, closed, False, None, hygiene, tz))
        # What really happened with the customer, and which of it reached the CRM.
        events.extend(self._touches(rng, profile, first_touch, closed, contacts, account, won, tz))
        return DealPlan(user, account, contacts, name, events)

    def _review_after(self, profile: Profile, died: datetime, tz: ZoneInfo) -> datetime | None:
        """The first pipeline review at which a deal that died unrecorded is noticed (None: never)."""
        every = profile.review_every_days
        if every is None:
            return None
        origin = datetime.combine(self.start, time(0), tzinfo=UTC)
        noticed = died + timedelta(days=self._care.uniform(10, 25))  # it takes a while to look dead
        earliest = max(noticed, origin + (self.now - origin) * profile.reviews_from)
        since = (earliest - origin).total_seconds() / 86400 - self._review_phase
        reviews = max(0, math.ceil(since / every))
        day = (origin + timedelta(days=self._review_phase + reviews * every)).astimezone(tz).date()
        return work_moment(self._care, day, tz, start=9, end=12)

    @staticmethod
    def _loss_stage(rng: random.Random, profile: Profile) -> int:
        if rng.random() < profile.late_losses:
            return rng.choice((PROPOSAL, NEGOTIATION))
        return rng.choice((0, 1, 1, 2, 2))

    @staticmethod
    def _close_guess(rng: random.Random, at: datetime, closed: datetime, optimism_days: float) -> date:
        """The rep's first close date: optimistic, so it usually has to be pushed."""
        guess = closed.date() - timedelta(days=round(rng.expovariate(1 / max(1.0, optimism_days))))
        return max(guess, at.date() + timedelta(days=7))

    def _stage_fields(
        self, rng: random.Random, stage_index: int, at: datetime, hygiene: Hygiene, tz: ZoneInfo
    ) -> dict[str, Any]:
        """Next step (and its date) as the rep would type them on entering a stage."""
        stage_name = OPEN_STAGES[stage_index]
        required = "next_step" in self.stages[stage_name].required_fields
        values: dict[str, Any] = {}
        if rng.random() < hygiene.fill:
            values["next_step"] = rng.choice(names.NEXT_STEPS[stage_name])
            values["next_step_date"] = working_day(
                at.astimezone(tz).date() + timedelta(days=rng.randint(2, 9))
            )
        elif required:
            values["next_step"] = "Follow up"
        return values

    def _create(
        self,
        rng: random.Random,
        at: datetime,
        name: str,
        account: Any,
        stage_index: int,
        amount: Decimal | None,
        close_guess: date | None,
        hygiene: Hygiene,
        tz: ZoneInfo,
    ) -> Event:
        values: dict[str, Any] = {
            "name": name,
            "account": account,
            "stage": self.stages[OPEN_STAGES[stage_index]],
        }
        values.update(self._stage_fields(rng, stage_index, at, hygiene, tz))
        if amount is not None and (stage_index >= PROPOSAL or rng.random() < hygiene.fill):
            values["amount"] = amount
            values["close_date"] = close_guess
        if rng.random() < hygiene.fill:
            values["source"] = rng.choice(names.LEAD_SOURCES)
        return self._event(at, "create", **values)

    def _lines(self, rng: random.Random, amount: Decimal) -> list[tuple[Product, Decimal, Decimal]]:
        """Product lines that add up to the deal's amount: a licence plus a services line."""
        licence, services = self.products[0], self.products[3]
        licence_part = (amount * Decimal("0.7")).quantize(Decimal("1"))
        seats = max(1, round(licence_part / licence.list_price))
        unit = (licence_part / seats).quantize(Decimal("0.01"))
        rest = amount - unit * seats
        lines = [(licence, Decimal(seats), unit)]
        if rest > 0:
            lines.append((services, Decimal(1), rest))
        return lines

    def _progress_events(
        self,
        rng: random.Random,
        profile: Profile,
        reached: list[datetime],
        stage_index: int,
        created: datetime,
        amount: Decimal,
        closed: datetime,
        hygiene: Hygiene,
        tz: ZoneInfo,
        priced: bool,
    ) -> Iterator[Event]:
        """Stage moves as entered: late by the rep's update delay, some skipped."""
        last = created
        has_amount = priced
        pending = list(range(stage_index + 1, len(reached)))
        for position, index in enumerate(pending):
            is_last = position == len(pending) - 1
            if not is_last and rng.random() < hygiene.skip:
                continue
            at = max(after(rng, reached[index], hygiene.update_days, tz), last + timedelta(minutes=10))
            if at >= closed + timedelta(days=30):
                break
            changes: dict[str, Any] = {"stage": self.stages[OPEN_STAGES[index]]}
            changes.update(self._stage_fields(rng, index, at, hygiene, tz))
            if index >= PROPOSAL and not has_amount:
                changes["amount"] = amount
                changes["close_date"] = self._close_guess(rng, at, closed, profile.optimism_days)
                has_amount = True
            elif index == NEGOTIATION and rng.random() < 0.4:
                # Discount in negotiation, now and then a sharp expansion.
                factor = rng.uniform(1.4, 2.0) if rng.random() < 0.2 else rng.uniform(0.7, 0.92)
                changes["amount"] = Decimal(round(float(amount) * factor, -2))
            last = at
            yield self._event(at, "update", **changes)

    def _push_events(
        self,
        rng: random.Random,
        events: list[Event],
        close_date: date | None,
        created: datetime,
        closed: datetime,
        hygiene: Hygiene,
        tz: ZoneInfo,
    ) -> Iterator[Event]:
        """Close-date pushes: when the promised date passes with the deal still open, the rep moves it."""
        for event in events:
            if "close_date" in event.data and event.data["close_date"] is not None:
                close_date = event.data["close_date"]
                break
        if close_date is None:
            return
        for _ in range(8):
            if close_date >= closed.date():
                return
            noticed = after(
                rng,
                datetime.combine(close_date, time(17), tzinfo=tz).astimezone(UTC),
                hygiene.update_days,
                tz,
            )
            if noticed >= closed:
                return
            close_date = min(
                closed.date() + timedelta(days=rng.randint(0, 10)),
                close_date + timedelta(days=rng.randint(10, 35)),
            )
            close_date = max(close_date, noticed.date() + timedelta(days=3))
            yield self._event(noticed, "update", close_date=close_date)

    def _close_event(
        self,
        rng: random.Random,
        at: datetime,
        closed: datetime,
        won: bool,
        amount: Decimal | None,
        hygiene: Hygiene,
        tz: ZoneInfo,
        fallback: Decimal | None = None,
    ) -> Event:
        if won:
            values: dict[str, Any] = {"stage": self.stages["Won"], "close_date": closed.astimezone(tz).date()}
            if amount is not None:
                values["amount"] = amount
            elif fallback is not None:
                values["fallback_amount"] = fallback
            values["next_step"] = ""
            values["next_step_date"] = None
            return self._event(at, "close", **values)
        values = {"stage": self.stages["Lost"], "lost_reason": rng.choice(names.LOST_REASONS)}
        if rng.random() < hygiene.fill:
            values["competitor"] = rng.choice(names.COMPETITORS)
        values["next_step"] = ""
        values["next_step_date"] = None
        return self._event(at, "close", **values)

    def _touches(
        self,
        rng: random.Random,
        profile: Profile,
        start: datetime,
        end: datetime,
        contacts: list[Any],
        account: Any,
        won: bool,
        tz: ZoneInfo,
    ) -> Iterator[Event]:
        """Customer touches from the first conversation to the close, and how each was logged."""
        moment = start
        first = True
        while moment <= end:
            kind = rng.choices(("email", "call", "meeting"), weights=(45, 35, 20))[0]
            if first:
                kind, first = "call", False
            yield from self._logged(rng, profile, moment, kind, contacts, account, tz)
            gap = rng.expovariate(1 / profile.touch_every_days)
            moment = work_moment(rng, (moment + timedelta(days=max(0.5, gap))).astimezone(tz).date(), tz)
        if won:
            yield from self._logged(rng, profile, end, "meeting", contacts, account, tz, signed=True)

    def _logged(
        self,
        rng: random.Random,
        profile: Profile,
        occurred: datetime,
        kind: str,
        contacts: list[Any],
        account: Any,
        tz: ZoneInfo,
        signed: bool = False,
    ) -> Iterator[Event]:
        hygiene = profile.hygiene_at(self._progress_of(occurred))
        if rng.random() >= hygiene.log_share:
            return
        if rng.random() < hygiene.instant_share:
            logged = occurred + timedelta(minutes=rng.randint(1, 50))
        else:
            lag = hygiene.lag_hours * math.exp(rng.gauss(0, 0.7))
            logged = occurred + timedelta(hours=lag)
            if lag > 10:  # typed in later, during someone's working hours
                logged = max(
                    work_moment(rng, logged.astimezone(tz).date(), tz), occurred + timedelta(hours=1)
                )
        contact = rng.choice(contacts) if contacts else None
        topic = rng.choice(names.TOPICS)
        if signed:
            subject = "Contract signed"
        else:
            subject = rng.choice(names.TOUCH_SUBJECTS[kind]).format(
                first=contact.first_name if contact else "the team", topic=topic, company=account.name
            )
        data: dict[str, Any] = {"kind": kind, "occurred_at": occurred, "subject": subject, "contact": contact}
        if not signed and self._care.random() < hygiene.fill:
            # Logging the touch, a careful rep also sets the deal's next step if the last one is
            # done (picked from the stage's list when the entry is made: the stage is known only then).
            due = working_day(logged.astimezone(tz).date() + timedelta(days=self._care.randint(2, 9)))
            data["next_step"] = (self._care.random(), due)
        yield self._event(logged, "touch", **data)

    # Applying a plan through the services

    def _apply(self, plan: DealPlan) -> tuple[int, int]:
        """Make the entries dated up to `now`, in order. Returns (deals created, activities logged)."""
        opp = None
        activities = 0
        for event in sorted(plan.events):
            if event.at > self.now:
                break
            if event.kind == "create":
                opp = pipeline_services.create_opportunity(plan.rep, via=Via.DEMO, at=event.at, **event.data)
            elif event.kind == "products" and opp is not None:
                pipeline_services.set_products(plan.rep, opp, event.data["lines"], via=Via.DEMO, at=event.at)
            elif event.kind in ("update", "close") and opp is not None:
                changes = dict(event.data)
                fallback = changes.pop("fallback_amount", None)
                if fallback is not None and opp.amount is None:
                    changes["amount"] = fallback
                opp = pipeline_services.update_opportunity(plan.rep, opp, changes, via=Via.DEMO, at=event.at)
            elif event.kind == "touch":
                data = event.data
                contact = data["contact"]
                activity_services.log_activity(
                    None,
                    owner=plan.rep,
                    via=Via.DEMO,
                    logged_at=event.at,
                    kind=data["kind"],
                    occurred_at=data["occurred_at"],
                    subject=data["subject"],
                    opportunity=opp,
                    account=plan.account,
                    participants=[contact] if contact else None,
                )
                activities += 1
                stage_name = self.open_stage_names.get(opp.stage_id) if opp is not None else None
                if "next_step" in data and stage_name is not None and self._step_due(opp, event.at):
                    assert opp is not None
                    pick, due = data["next_step"]
                    choices = names.NEXT_STEPS[stage_name]
                    changes = {"next_step": choices[int(pick * len(choices))], "next_step_date": due}
                    opp = pipeline_services.update_opportunity(
                        plan.rep, opp, changes, via=Via.DEMO, at=event.at
                    )
        return (1 if opp is not None else 0), activities

    @staticmethod
    def _step_due(opp: Any, at: datetime) -> bool:
        """Whether the deal's next step is missing or due by tomorrow (time to set the next one)."""
        if not opp.next_step or opp.next_step_date is None:
            return True
        return bool(opp.next_step_date <= (at + timedelta(days=1)).date())


def deal_count(profile: Profile, months: int) -> int:
    return max(1, round(profile.deals_per_month * months))
