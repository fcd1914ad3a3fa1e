"""The exception reporter filter: what an error page or error report may show."""

from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter hides ``sensitive_variables`` / ``sensitive_post_parameters`` only
    when DEBUG is off. A SIP password must not appear on a DEBUG error page either (a
    developer's screen, a shared screenshot): this one always hides them."""

    def is_active(self, request):
        return True
