"""The client generated from openapi/openapi.json by openapi-python-client, used as a client
developer would: a multi-chunk upload, the status, and the content."""

import os
from io import BytesIO

from filegate_client import AuthenticatedClient
from filegate_client.api.files import get_file_content, get_file_status, upload_chunk
from filegate_client.models import ModeName, UploadChunkBody
from filegate_client.types import File


def make_client(server):
    base, key = server
    return AuthenticatedClient(base_url=base, token=key, prefix="", auth_header_name="X-API-Key")


def chunk(data, index, total, file_id=None):
    body = UploadChunkBody(
        file=File(payload=BytesIO(data), file_name="contacts.csv", mime_type="text/csv"),
        block_index=index,
        total_blocks=total,
        mode=ModeName.IMPORT,
    )
    if file_id is not None:
        body.file_id = file_id
    return body


def test_a_multi_chunk_upload_its_status_and_its_content(server):
    client = make_client(server)
    # A CSV by its first bytes (Import takes UTF-8 text), random after.
    data = (b"name,phone\n" + os.urandom(3 * 100_000).hex().encode())[: 3 * 100_000 + 7]
    parts = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    total = len(parts)

    first = upload_chunk.sync(client=client, body=chunk(parts[0], 0, total))
    assert first.is_success and not first.data.is_complete
    file_id = first.data.file_id

    for index in range(total - 1, 0, -1):
        answer = upload_chunk.sync(client=client, body=chunk(parts[index], index, total, file_id))
        assert answer.is_success

    assert answer.data.is_complete
    assert answer.data.url.endswith(f"/api/v1/Files/{file_id}/content")

    status = get_file_status.sync(client=client, file_id=file_id)
    assert status.is_success
    assert status.data.is_complete
    assert status.data.missing_blocks == []
    assert status.data.received_blocks == list(range(total))
    assert status.data.size == len(data)
    assert status.data.file_name == "contacts.csv"

    content = get_file_content.sync_detailed(client=client, file_id=file_id)
    assert content.status_code == 200
    assert content.content == data

    part = get_file_content.sync_detailed(client=client, file_id=file_id, range_="bytes=10-19")
    assert part.status_code == 206
    assert part.content == data[10:20]


def test_errors_come_back_as_the_envelope(server):
    client = make_client(server)
    answer = upload_chunk.sync_detailed(client=client, body=chunk(b"x", 1, 2))
    assert answer.status_code == 400
    assert answer.parsed.is_success is False
    assert "FileId" in answer.parsed.message
