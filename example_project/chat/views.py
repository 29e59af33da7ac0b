"""Pages (notifications, chat, dashboard) and the chat's small JSON API."""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

import realtime
from example_project.chat.metrics import counters
from example_project.chat.models import Message, ReadMarker, Room

HISTORY = 50  # messages a page starts with


@login_required
def home(request):
    return render(request, "chat/home.html", {"page": "home"})


@login_required
def chat(request, slug=None):
    rooms = list(Room.objects.all())
    if not rooms:
        raise Http404("No rooms yet: run `manage.py demo` to create some.")
    if slug is None:
        return redirect("chat-room", slug=rooms[0].slug)
    room = get_object_or_404(Room, slug=slug)
    context = {"page": "chat", "rooms": rooms, "room": room, **room_state(room)}
    return render(request, "chat/chat.html", context)


def room_state(room, after=None):
    """Recent messages and read markers: the page's start, and its catch-up."""
    messages = room.messages.select_related("author", "room")
    if after is None:
        messages = list(messages.order_by("-id")[:HISTORY])[::-1]
    else:
        messages = messages.filter(pk__gt=after)[:500]
    markers = ReadMarker.objects.filter(room=room).select_related("user")
    return {
        "messages": [m.as_event() for m in messages],
        "markers": {m.user.get_username(): m.last_read_id for m in markers},
    }


@login_required
@require_http_methods(["GET", "POST"])
def messages_api(request, slug):
    """GET ``?after=<id>``: messages after id plus read markers (recovery).
    POST ``{"text"}``: store and broadcast a message, as from a form or a script."""
    room = get_object_or_404(Room, slug=slug)
    if request.method == "GET":
        after = request.GET.get("after")
        after = int(after) if after and after.isdigit() else None
        return JsonResponse(room_state(room, after))
    try:
        text = str(json.loads(request.body or b"{}").get("text", "")).strip()
    except (ValueError, AttributeError):
        text = ""
    if not text or len(text) > 2000:
        return JsonResponse({"error": "text: 1 to 2000 characters"}, status=400)
    message = Message.objects.create(room=room, author=request.user, text=text)
    counters.messages += 1
    # Sync code: notify() sends once the (implicit) transaction has committed.
    realtime.notify(room.group, "chat.message", message.as_event())
    return JsonResponse(message.as_event(), status=201)


@login_required
def dashboard(request):
    return render(request, "chat/dashboard.html", {"page": "dashboard"})
