"""Create the demo logins that `make run` prints, if the database has no users yet."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from endpoints import roles

DEMO_USERS = (
    ("admin", "admin-demo-pass", roles.ENDPOINT_ADMIN),
    ("support", "support-demo-pass", roles.SUPPORT),
)


class Command(BaseCommand):
    help = "Create demo users (Endpoint admin and Support) when no user exists; print logins."

    def handle(self, *args, **options):
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
