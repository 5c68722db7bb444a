"""`truepipe calendar feed add|list|remove`, `truepipe calendar poll`: the iCalendar feeds capture polls."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from truepipe.capture import calendar
from truepipe.capture.models import CalendarFeed


class Command(BaseCommand):
    help = (
        "Calendar feeds (iCalendar URLs, webcal:// included) whose meetings are captured as their "
        "owner's: add, list, remove, and poll them now (the worker polls every 15 minutes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        feed = actions.add_parser("feed", help="The feeds: add, list, remove.")
        what = feed.add_subparsers(dest="what", required=True)
        add = what.add_parser("add", help="Add a person's calendar feed (an https:// or webcal:// URL).")
        add.add_argument("username", help="Whose calendar it is: the meetings are logged as theirs.")
        add.add_argument("url")
        add.add_argument("--disabled", action="store_true", help="Save it without polling it yet.")
        what.add_parser("list", help="Every feed: owner, last fetch, last error.")
        remove = what.add_parser("remove", help="Stop polling a feed; what it captured stays logged.")
        remove.add_argument("id", type=int)
        poll = actions.add_parser("poll", help="Fetch every enabled feed now, or one.")
        poll.add_argument("--feed", type=int, metavar="ID", help="Only this feed (even if disabled).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "poll":
            self._poll(options)
        else:
            getattr(self, f"_{options['what']}")(options)

    def _add(self, options: dict[str, Any]) -> None:
        owner = get_user_model().objects.filter(username=options["username"]).first()
        if owner is None:
            raise CommandError(f"No user {options['username']!r}.")
        url = options["url"].strip()
        try:
            calendar.feed_url(url)
        except calendar.FeedError as exc:
            raise CommandError(str(exc)) from None
        if len(url) > CalendarFeed._meta.get_field("url").max_length:  # type: ignore[operator]
            raise CommandError("The URL is too long (1000 characters at most).")
        if CalendarFeed.objects.filter(owner=owner, url=url).exists():
            raise CommandError(f"{owner.username} has this feed already.")
        feed = CalendarFeed.objects.create(owner=owner, url=url, enabled=not options["disabled"])
        state = "" if feed.enabled else " (disabled)"
        self.stdout.write(f"Feed #{feed.pk} added for {owner.username}: {calendar.redact(url)}{state}.")

    def _list(self, options: dict[str, Any]) -> None:
        feeds = CalendarFeed.objects.select_related("owner").order_by("pk")
        rows = [("ID", "OWNER", "ON", "LAST FETCHED", "URL", "LAST ERROR")]
        for feed in feeds:
            fetched = (
                timezone.localtime(feed.last_fetched_at).strftime("%Y-%m-%d %H:%M")
                if feed.last_fetched_at
                else "never"
            )
            rows.append(
                (
                    f"#{feed.pk}",
                    feed.owner.username,
                    "yes" if feed.enabled else "no",
                    fetched,
                    calendar.redact(feed.url),
                    feed.last_error.replace("\n", " ")[:200] or "-",
                )
            )
        if len(rows) == 1:
            self.stdout.write("No calendar feeds (`truepipe calendar feed add USERNAME URL`).")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [v.ljust(w) for v, w in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]))

    def _remove(self, options: dict[str, Any]) -> None:
        feed = self._feed(options["id"])
        feed.delete()
        self.stdout.write(f"Feed #{options['id']} removed; the meetings it captured stay logged.")

    def _feed(self, pk: int) -> CalendarFeed:
        feed = CalendarFeed.objects.select_related("owner").filter(pk=pk).first()
        if feed is None:
            raise CommandError(f"No calendar feed #{pk} (`truepipe calendar feed list`).")
        return feed

    def _poll(self, options: dict[str, Any]) -> None:
        feeds: list[CalendarFeed] | None = None
        if options["feed"] is not None:
            feeds = [self._feed(options["feed"])]
        reports = calendar.poll_feeds(feeds)
        if not reports:
            self.stdout.write("No enabled calendar feeds.")
            return
        failed = []
        for report in reports:
            for origin, reason in report.problems[:20]:
                self.stderr.write(f"  rejected: {origin}: {reason}")
            self.stdout.write(report.summary())
            if report.error:
                failed.append(report.feed)
        if failed:
            raise CommandError(f"{len(failed)} feed(s) could not be read: {', '.join(failed)}.")
