from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """Registers the sandbox so ``manage.py runsandbox`` is found; it has no models."""

    name = "vobizadmin.sandbox"
    label = "sandbox"
    verbose_name = "Vobiz API sandbox"
