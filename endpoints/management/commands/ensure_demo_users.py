"""Create the demo logins that `make run` prints, if the database has no users yet.
Development only: refuses to run with DJANGO_DEBUG off (exit status 2)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from endpoints import roles

DEMO_USERS = (
    ("admin", "admin-demo-pass", roles.ENDPOINT_ADMIN),
    ("support", "support-demo-pass", roles.SUPPORT),
)


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
        for username, password, group in DEMO_USERS:
            user = User.objects.create_user(username=username, password=password)
            user.groups.add(Group.objects.get(name=group))
        self.stdout.write("  Demo logins (created now; local use only):")
        for username, password, group in DEMO_USERS:
            self.stdout.write(f"    {username} / {password}  ({group})")
