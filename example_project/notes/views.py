from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from .models import Note


@login_required
def notes(request, slug=None):
    if slug is None:
        first = Note.objects.order_by("pk").first()
        return (
            redirect("note", slug=first.slug)
            if first
            else render(
                request,
                "notes/notes.html",
                {"page": "notes", "notes": [], "note": None},
            )
        )
    note = get_object_or_404(Note, slug=slug)
    return render(
        request,
        "notes/notes.html",
        {
            "page": "notes",
            "notes": Note.objects.order_by("title"),
            "note": note,
            "read_only": note.viewers.filter(pk=request.user.pk).exists(),
        },
    )
