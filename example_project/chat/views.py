import json

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

import realtime


def home(request):
    return HttpResponse(
        "<h1>realtime example</h1><p><a href='/chat/'>chat</a></p>",
        content_type="text/html",
    )


@login_required
def chat(request):
    return render(request, "chat/chat.html", {"room": request.GET.get("room", "lobby")})


@login_required
@require_POST
def post_message(request):
    body = json.loads(request.body or b"{}")
    realtime.notify(
        f"room.{body.get('room', 'lobby')}",
        "chat.message",
        {"room": body.get("room", "lobby"), "text": body.get("text", "")},
    )
    return JsonResponse({"sent": True})
