"""The HTTP surface: authentication, status codes, GET rules, health endpoints."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from carbongraph.app import create_app
from carbongraph.authz import InvalidToken, TokenVerifier, mint_token
from carbongraph.config import Settings


async def test_missing_token_is_401(api):
    response = await api.post("{ me { subject } }")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("mangle", ["garbage", "wrong-secret", "expired", "wrong-audience"])
async def test_invalid_tokens_are_401(api, mangle):
    settings = api.settings
    if mangle == "garbage":
        token = "not.a.jwt"
    elif mangle == "wrong-secret":
        token = jwt.encode(
            {
                "sub": "x",
                "iss": settings.jwt_issuer,
                "aud": settings.jwt_audience,
                "exp": 4102444800,
            },
            "another-secret-that-is-long-enough-32b",
            algorithm="HS256",
        )
    elif mangle == "expired":
        token = mint_token(settings, "x", ttl=timedelta(hours=-1))
    else:
        token = jwt.encode(
            {"sub": "x", "iss": settings.jwt_issuer, "aud": "someone-else", "exp": 4102444800},
            settings.effective_jwt_secret,
            algorithm="HS256",
        )
    response = await api.post("{ me { subject } }", token=token)
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_malformed_graphql_is_400(api):
    response = await api.post("{ me { subject ", subject="anyone")
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("Syntax Error")
    response = await api.post("{ noSuchField }", subject="anyone")
    assert response.status_code == 400


async def test_get_runs_queries_but_never_mutations(api):
    token = api.token("anyone")
    headers = {"Authorization": f"Bearer {token}"}
    response = await api.client.get(
        "/graphql", params={"query": "{ me { subject } }"}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["data"]["me"]["subject"] == "anyone"
    mutation = (
        'mutation { createEnterprise(input: {name: "x", kind: COMPANY}) { userErrors { code } } }'
    )
    response = await api.client.get("/graphql", params={"query": mutation}, headers=headers)
    assert response.status_code == 405


async def test_graphiql_in_development_only(engine, settings, api):
    response = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()
    import httpx

    production = Settings.from_env(
        database_url=settings.database_url,
        env="production",
        jwt_secret="a-production-secret-of-enough-length",
    )
    app = create_app(production, engine=engine)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 404


async def test_health_and_readiness(api):
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "reachable"


def test_rs256_with_public_key_and_jwks(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "private.pem"
    public = tmp_path / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    minting = Settings.from_env(
        env="production", jwt_private_key_file=private, jwt_public_key_file=public
    )
    token = mint_token(minting, "svc")
    assert TokenVerifier(minting).verify(token).subject == "svc"

    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "k1"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    verifying = Settings.from_env(env="production", jwt_jwks_file=jwks)
    signed = jwt.encode(
        {"sub": "svc", "iss": "carbongraph", "aud": "carbongraph", "exp": 4102444800},
        private.read_text(),
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert TokenVerifier(verifying).verify(signed).subject == "svc"
    # An HS256 token is not accepted by an RS256-only production configuration.
    forged = jwt.encode(
        {"sub": "svc", "iss": "carbongraph", "aud": "carbongraph", "exp": 4102444800},
        "x" * 32,
        algorithm="HS256",
    )
    with pytest.raises(InvalidToken):
        TokenVerifier(verifying).verify(forged)


def test_a_verified_token_is_remembered_only_until_it_expires(monkeypatch):
    settings = Settings.from_env(jwt_secret="s" * 32)
    verifier = TokenVerifier(settings)
    # Expired 29 s ago: accepted for about one more second under the 30 s leeway.
    leeway = TokenVerifier.LEEWAY_SECONDS
    token = mint_token(settings, "svc", ttl=timedelta(seconds=-(leeway - 1)))
    calls = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    assert verifier.verify(token).subject == "svc"
    assert verifier.verify(token).subject == "svc"
    assert len(calls) == 1  # the second answer came from what the first verified
    time.sleep(1.5)
    # Past exp + leeway the token is verified again, and refused as PyJWT refuses it.
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)
    assert len(calls) == 2
    # A refused token is never remembered.
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    assert len(calls) == 3


def test_production_requires_a_key():
    from carbongraph.config import ConfigError

    with pytest.raises(ConfigError):
        Settings.from_env(env="production", jwt_secret=None)


async def test_a_field_error_beside_loading_siblings_is_a_clean_answer(engine, api):
    """graphql-core abandons (and cancels) sibling loads when a non-null field fails; the
    request must still answer with the field's error, and the next request must work."""
    from tests.world import build_world, gid

    world = await build_world(engine)
    query = """query($id: ID!) { community(id: $id) {
      households(first: 5) { totalCount edges { node { id members(first: 3) { totalCount } } } }
      footprint(period: {month: "2026-13"}) { net } } }"""
    variables = {"id": gid("Community", world.a.communities[0])}
    for _ in range(3):
        response = await api.post(query, variables, subject="org-a")
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == {"community": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    ok = await api.gql(
        "query($id: ID!) { community(id: $id) { households(first: 5) { totalCount } } }",
        variables,
        subject="org-a",
    )
    assert ok["data"]["community"]["households"]["totalCount"] == 3
