"""Stored documents and the open-document registry (database, no server)."""

import asyncio

import pycrdt
import pytest
from django.test import override_settings

from realtime import exceptions as exc
from realtime.collab import store
from realtime.collab.documents import Documents, OpenDocument
from realtime.collab.models import Document, DocumentUpdate

pytestmark = pytest.mark.django_db(transaction=True)


def edit(doc: pycrdt.Doc, change) -> bytes:
    before = doc.get_state()
    change(doc.get("content", type=pycrdt.Text))
    return doc.get_update(before)


def test_compaction_merges_updates_into_the_snapshot_and_keeps_the_text():
    client = pycrdt.Doc()
    for word in ["one ", "two ", "three"]:
        store.append("doc.a", edit(client, lambda t, w=word: t.insert(len(t), w)))
    assert store.text("doc.a") == "one two three"
    assert store.compact("doc.a") == 3
    assert DocumentUpdate.objects.count() == 0
    document = Document.objects.get(name="doc.a")
    assert document.snapshot_upto > 0
    store.append("doc.a", edit(client, lambda t: t.insert(0, ">")))
    assert store.text("doc.a") == ">one two three"
    # A reader that had applied everything before compaction gets only what followed.
    chunks, last = store.read("doc.a", document.snapshot_upto)
    assert len(chunks) == 1 and last > document.snapshot_upto


def test_a_reader_behind_the_snapshot_gets_the_snapshot():
    client = pycrdt.Doc()
    first = edit(client, lambda t: t.insert(0, "abc"))
    row, _ = store.append("doc.b", first)
    store.append("doc.b", edit(client, lambda t: t.insert(3, "def")))
    store.compact("doc.b")
    reader = pycrdt.Doc()
    reader.apply_update(first)  # it had read update `row` before compaction
    chunks, _ = store.read("doc.b", row)
    for chunk in chunks:
        reader.apply_update(chunk)
    assert str(reader.get("content", type=pycrdt.Text)) == "abcdef"


async def test_apply_refuses_garbage_and_keeps_the_document_unchanged():
    document = OpenDocument("doc.c")
    client = pycrdt.Doc()
    assert await document.apply(edit(client, lambda t: t.insert(0, "ok")))
    with pytest.raises(exc.ValidationFailed):
        await document.apply(b"\x01\x02garbage")
    assert str(document.doc.get("content", type=pycrdt.Text)) == "ok"
    assert await store.atext("doc.c") == "ok"
    assert not await document.apply(b"\x00\x00")  # empty: nothing stored
    assert await DocumentUpdate.objects.acount() == 1


async def test_an_update_whose_dependencies_another_process_holds_is_stored():
    # Process B's copy lacks what process A accepted; a client's next update builds
    # on it. B cannot integrate it yet, but must store and relay it.
    on_a, on_b = OpenDocument("doc.f"), OpenDocument("doc.f")
    await on_b.refresh()  # B loaded the document before A's update
    client = pycrdt.Doc()
    await on_a.apply(edit(client, lambda t: t.insert(0, "from A ")))
    assert await on_b.apply(edit(client, lambda t: t.insert(7, "then B")))
    assert await store.atext("doc.f") == "from A then B"
    await on_b.refresh()
    assert str(on_b.doc.get("content", type=pycrdt.Text)) == "from A then B"


async def test_a_document_cannot_grow_past_its_limit():
    document = OpenDocument("doc.d")
    client = pycrdt.Doc()
    with override_settings(REALTIME={"COLLAB_MAX_DOCUMENT_BYTES": 200}):
        await document.apply(edit(client, lambda t: t.insert(0, "x" * 50)))
        with pytest.raises(exc.RealtimeError) as refused:
            await document.apply(edit(client, lambda t: t.insert(0, "y" * 200)))
        assert refused.value.code == "too_large"
        assert refused.value.close_code is None  # the reader stays connected
    assert await store.atext("doc.d") == "x" * 50


async def test_the_size_limit_counts_what_other_processes_stored():
    client = pycrdt.Doc()
    await OpenDocument("doc.g").apply(edit(client, lambda t: t.insert(0, "x" * 150)))
    elsewhere = OpenDocument("doc.g")  # another process, never loaded it
    limit = override_settings(REALTIME={"COLLAB_MAX_DOCUMENT_BYTES": 200})
    with limit, pytest.raises(exc.RealtimeError) as refused:
        await elsewhere.apply(edit(client, lambda t: t.insert(0, "y" * 100)))
    assert refused.value.code == "too_large"


async def test_open_documents_are_bounded_and_unloaded_when_idle():
    documents = Documents()
    with override_settings(
        REALTIME={"COLLAB_MAX_OPEN_DOCUMENTS": 2, "COLLAB_IDLE_SECONDS": 10}
    ):
        a = await documents.get("doc.1")
        await documents.get("doc.2")
        await documents.get("doc.1")  # doc.2 is now the least recently used
        await documents.get("doc.3")
        assert "doc.2" not in documents and len(documents) == 2
        assert await documents.get("doc.1") is a
        assert sorted(documents.unload_idle(now=a.used + 11)) == ["doc.1", "doc.3"]
        assert len(documents) == 0


async def test_compaction_runs_in_the_background_after_enough_updates():
    document = OpenDocument("doc.e")
    client = pycrdt.Doc()
    with override_settings(REALTIME={"COLLAB_COMPACT_AFTER": 3}):
        for i in range(3):
            await document.apply(edit(client, lambda t, i=i: t.insert(0, str(i))))
        deadline = asyncio.get_running_loop().time() + 5
        while await DocumentUpdate.objects.acount():
            assert asyncio.get_running_loop().time() < deadline, "never compacted"
            await asyncio.sleep(0.02)
    assert await store.atext("doc.e") == "210"
