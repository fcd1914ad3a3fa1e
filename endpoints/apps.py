from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Vobiz endpoints"
    default_auto_field = "django.db.models.BigAutoField"
