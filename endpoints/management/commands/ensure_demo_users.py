"""Create the demo logins that `make run` prints, if the database has no users yet, and give
the demo's sub-accounts names (Acme, Globex, ...) with a Support user scoped to the first.
Development only: refuses to run with DJANGO_DEBUG off (exit status 2)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from endpoints import roles
from endpoints.models import Endpoint, StaffScope, SubAccount

DEMO_USERS = (
    ("admin", "admin-demo-pass", roles.ENDPOINT_ADMIN),
    ("support", "support-demo-pass", roles.SUPPORT),
    ("acme", "acme-demo-pass", roles.SUPPORT),  # scoped to the first sub-account
)
DEMO_NAMES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")


class Command(BaseCommand):
    help = "Create demo users (Endpoint admin and Support) when no user exists; print logins."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            # Known passwords on a production database would be anyone's way in.
            raise CommandError(
                "ensure_demo_users creates well-known demo logins; it runs only with "
                "DJANGO_DEBUG=true.",
                returncode=2,
            )
        User = get_user_model()
        if User.objects.exists():
            self.stdout.write("  Log in with your existing account.")
            return
        roles.ensure_roles()
        names = self._name_sub_accounts()
        for username, password, group in DEMO_USERS:
            user = User.objects.create_user(username=username, password=password)
            user.groups.add(Group.objects.get(name=group))
            if username == "acme" and names:
                StaffScope.objects.create(user=user, all_endpoints=False,
                                          sub_accounts=[names[0][0]])
        self.stdout.write("  Demo logins (created now; local use only):")
        for username, password, group in DEMO_USERS:
            scope = f", scope {names[0][1]}" if username == "acme" and names else ""
            self.stdout.write(f"    {username} / {password}  ({group}{scope})")

    def _name_sub_accounts(self) -> list[tuple[str, str]]:
        """Local names for the synced sub-accounts that have none (demo data only)."""
        present = (Endpoint.objects.exclude(sub_account="").order_by("sub_account")
                   .values_list("sub_account", flat=True).distinct())
        named = []
        for sub, name in zip(present, DEMO_NAMES, strict=False):
            row, _ = SubAccount.objects.get_or_create(sub_account=sub, defaults={"name": name})
            named.append((sub, row.name))
        return named
