"""The checks in front of the GraphQL endpoint (carbongraph.http): their order, ``Vary``, and a
body limit that stops reading at the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from carbongraph.http.negotiation import with_vary_accept

QUERY = b'{"query": "{ me { subject } }"}'


def test_vary_accept_is_added_or_joined_like_starlettes():
    assert with_vary_accept([(b"a", b"1")]) == [(b"a", b"1"), (b"vary", b"Accept")]
    joined = with_vary_accept([(b"vary", b"Origin"), (b"a", b"1"), (b"vary", b"Cookie")])
    assert joined == [(b"vary", b"Origin, Cookie, Accept"), (b"a", b"1")]


async def test_every_refusal_and_answer_varies_by_accept(api):
    token = {"Authorization": f"Bearer {api.token('anyone')}"}
    cases = [
        ({}, 401),  # no token
        ({**token, "Accept": "text/html"}, 406),
        ({**token, "Content-Type": "text/plain"}, 415),
        (token, 200),
    ]
    for headers, status in cases:
        response = await api.client.post(
            "/graphql", content=QUERY, headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == status, response.text
        assert response.headers.get_list("vary") == ["Accept"], response.headers


async def test_authentication_comes_before_the_media_type_checks(api):
    response = await api.client.post(
        "/graphql",
        content=b"x",
        headers={"Accept": "application/graphql-response+json", "Content-Type": "text/plain"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    response = await api.client.post(
        "/graphql", content=b"x", headers={"Accept": "text/csv", "Content-Type": "text/plain"}
    )
    assert response.status_code == 401  # 406 and 415 only for an authenticated caller
    assert response.headers["content-type"] == "application/json; charset=utf-8"


async def test_a_streamed_body_over_the_limit_is_refused_without_reading_it_all(api):
    chunk, chunks = b" " * 100_000, 100  # 10 MB, no Content-Length
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(chunks):
            sent += 1
            yield chunk

    response = await api.client.post(
        "/graphql",
        content=body(),
        headers={
            "Authorization": f"Bearer {api.token('anyone')}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    # Read up to the largest limit (the bulk one), not to the end.
    largest = max(api.settings.max_body_bytes, api.settings.max_bulk_body_bytes)
    assert sent <= largest // len(chunk) + 2 < chunks


async def test_a_streamed_body_within_the_limit_reaches_the_endpoint(api):
    async def body() -> AsyncIterator[bytes]:
        for part in (QUERY[:10], QUERY[10:20], QUERY[20:]):
            yield part

    response = await api.client.post(
        "/graphql",
        content=body(),
        headers={
            "Authorization": f"Bearer {api.token('anyone')}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.text
    # (Development responses also say in extensions whether the planner answered.)
    assert response.json()["data"] == {"me": {"subject": "anyone"}}
    assert "errors" not in response.json()
