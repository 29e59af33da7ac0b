"""``CollaborativeText``: read a shared document's text as a model attribute."""

from __future__ import annotations

from typing import Any

from realtime.collab import store


class CollaborativeText:
    """The stored text of ``Y.Text`` ``field`` in the document named by ``document``,
    a format string over the instance's attributes (``"doc.{slug}"``). Read-only:
    clients change the text, the server stores it (docs/collab.md)."""

    def __init__(self, document: str, *, field: str = "content") -> None:
        self.document, self.field = document, field

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def document_name(self, instance: Any) -> str:
        return self.document.format_map(_Attributes(instance))

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return store.text(self.document_name(instance), self.field)


class _Attributes:
    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def __getitem__(self, key: str) -> Any:
        return getattr(self.instance, key)
