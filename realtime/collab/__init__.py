"""Shared documents: Yjs clients, a pycrdt document per open document on the server.

Add ``"realtime.collab"`` to ``INSTALLED_APPS`` and ``DocumentsMixin`` to a consumer
(docs/collab.md). Documents are groups (``"doc.{slug}"``): reading one is joining its
group, writing is checked with the consumer's ``documents`` permission classes.
"""
