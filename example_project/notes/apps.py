from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "example_project.notes"
    default_auto_field = "django.db.models.BigAutoField"
