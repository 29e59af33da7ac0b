"""Exports of the event registry: JSON Schema, AsyncAPI 3.0 and TypeScript."""
