from django.contrib.auth import views as auth_views
from django.urls import path

from truepipe.web.views import accountability as accountability_views
from truepipe.web.views import accounts, activities, board, opportunities, pipeline, policy, search
from truepipe.web.views import capture as capture_views
from truepipe.web.views import contracts as contracts_views
from truepipe.web.views import notifications as notification_views
from truepipe.web.views import oneline as oneline_views
from truepipe.web.views import scorecard as scorecard_views
from truepipe.web.views import shadow as shadow_views
from truepipe.web.views import today as today_views
from truepipe.web.views import vcard as vcard_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", pipeline.pipeline_list, name="pipeline"),
    path("pipeline/bulk/", pipeline.bulk_action, name="pipeline-bulk"),
    path("pipeline/export.csv", pipeline.export_csv, name="pipeline-export"),
    path("export/<str:kind>.csv", pipeline.export_csv, name="export"),
    path("board/", board.board, name="board"),
    path("board/move/", board.move, name="board-move"),
    path("opportunities/new/", opportunities.opportunity_new, name="opportunity-new"),
    path("opportunities/<int:pk>/", opportunities.opportunity_detail, name="opportunity"),
    path("log/", activities.log_touch, name="log"),
    path("update/", oneline_views.one_line, name="one-line"),
    path("accounts/", accounts.account_list, name="accounts"),
    path("accounts/new/", accounts.account_new, name="account-new"),
    path("accounts/<int:pk>/", accounts.account_detail, name="account"),
    path("accounts/<int:pk>/edit/", accounts.account_edit, name="account-edit"),
    path("contacts/", accounts.contact_list, name="contacts"),
    path("contacts/new/", accounts.contact_new, name="contact-new"),
    path("contacts/<int:pk>/", accounts.contact_detail, name="contact"),
    path("contacts/<int:pk>/edit/", accounts.contact_edit, name="contact-edit"),
    path("contacts/export.vcf", vcard_views.contacts_vcf, name="contacts-vcf"),
    path("contacts/import-vcard/", vcard_views.contacts_vcf_import, name="contacts-vcf-import"),
    path("contacts/<int:pk>/vcard.vcf", vcard_views.contact_vcf, name="contact-vcf"),
    path("search/", search.search, name="search"),
    path("policy/", policy.policy_page, name="policy"),
    path("policy/export.json", policy.policy_export, name="policy-export"),
    path("today/", today_views.today, name="today"),
    path("today/items/<int:pk>/<slug:action>/", today_views.fix, name="today-fix"),
    path("today/time-box/", today_views.time_box, name="today-time-box"),
    path("today/snoozes/<int:pk>/wake/", today_views.wake, name="today-wake"),
    path("scorecard/", scorecard_views.scorecard_page, name="scorecard"),
    path("scorecard/<int:rep_id>/", scorecard_views.rep_scorecard, name="rep-scorecard"),
    path("violations/<int:pk>/waive/", scorecard_views.violation_waive, name="violation-waive"),
    path("policy/acknowledge/", accountability_views.policy_acknowledge, name="policy-acknowledge"),
    path("accountability/", accountability_views.accountability_page, name="accountability"),
    path("notifications/", notification_views.notifications_page, name="notifications"),
    path("capture/shadow/", shadow_views.shadow_page, name="shadow-pipeline"),
    path("contracts/", contracts_views.contracts_page, name="contracts"),
    path("capture/", capture_views.capture_page, name="capture"),
    path("capture/upload/", capture_views.capture_upload, name="capture-upload"),
    path("capture/settings/", capture_views.capture_settings, name="capture-settings"),
    path("capture/triage/<int:pk>/", capture_views.triage_decide, name="capture-triage"),
    path("capture/proposals/<int:pk>/", capture_views.proposal_decide, name="capture-proposal"),
    path("capture/items/<int:pk>/private/", capture_views.capture_private, name="capture-private"),
    path("accountability/offenses/<int:pk>/", accountability_views.offense_detail, name="offense"),
    path("accountability/fairness/", accountability_views.fairness_page, name="fairness"),
    *[
        path(f"accountability/{route}/", accountability_views.decide, {"decision": name}, name=name)
        for name, route in {
            "offense-acknowledge": "offenses/<int:pk>/acknowledge",
            "offense-dispute": "offenses/<int:pk>/dispute",
            "consequence-apply": "consequences/<int:pk>/apply",
            "consequence-waive": "consequences/<int:pk>/waive",
            "dispute-resolve": "disputes/<int:pk>/resolve",
        }.items()
    ],
]
