"""Durable per-user notifications (optional sub-app: add "realtime.inbox")."""
