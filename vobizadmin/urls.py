from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from endpoints.auth import LoginView, ThrottledAdminAuthenticationForm, logout_everywhere
from endpoints.views import health

# The admin's login shares the dashboard's throttle (the authentication backend) and message.
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/logout-everywhere/", logout_everywhere, name="logout_everywhere"),
    path("admin/", admin.site.urls),
    path("healthz", health, name="health"),
    path("", include("endpoints.urls")),
]
