"""Photo evidence: upload (multipart), review, credits on approval only, dedupe, bad files."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tests.world import build_world, gid

UPLOAD = """mutation($input: UploadEvidenceInput!) { uploadEvidence(input: $input) {
  evidence { id sha256 contentType capturedAt } userErrors { field code message } } }"""


def jpeg(color: tuple[int, int, int], taken: str | None = "2025:06:01 12:30:00") -> bytes:
    image = Image.new("RGB", (16, 16), color)
    exif = image.getexif()
    if taken:
        exif.get_ifd(0x8769)[36867] = taken
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


async def upload(
    api,
    subject: str,
    individual: str,
    data: bytes,
    *,
    preflight: bool = True,
    name: str = "plate.jpg",
):
    headers = {"Authorization": f"Bearer {api.token(subject)}"}
    if preflight:
        headers["X-Carbongraph-Preflight"] = "1"
    operations = {
        "query": UPLOAD,
        "variables": {"input": {"individualId": individual, "file": None}},
    }
    return await api.client.post(
        "/graphql",
        headers=headers,
        data={
            "operations": json.dumps(operations),
            "map": json.dumps({"0": ["variables.input.file"]}),
        },
        files={"0": (name, data, "image/jpeg")},
    )


@pytest.fixture(autouse=True)
def evidence_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CARBONGRAPH_EVIDENCE_DIR", str(tmp_path / "evidence"))
    return tmp_path / "evidence"


async def test_clean_plate_photo_flow(engine, api, evidence_dir):
    world = await build_world(engine)
    community = world.a.communities[0]
    home = world.a.households[community][0]
    student = gid("Individual", world.a.members[home][0])
    photo = jpeg((200, 30, 30))

    # 1. The student uploads a clean-plate photo and records the action: pending.
    response = await upload(api, "resident-a", student, photo)
    payload = response.json()["data"]["uploadEvidence"]
    assert payload["userErrors"] == []
    evidence = payload["evidence"]
    assert evidence["contentType"] == "JPEG"
    assert evidence["capturedAt"].startswith("2025-06-01T12:30:00")
    assert len(list(evidence_dir.rglob("*.jpeg"))) == 1
    record = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
      actions { id status credits evidence { sha256 } } userErrors { code } } }"""
    body = await api.gql(
        record,
        {
            "a": {
                "individualId": student,
                "actionType": "CLEAN_PLATE",
                "occurredOn": "2025-06-01",
                "evidenceId": evidence["id"],
            }
        },
        subject="resident-a",
    )
    assert body["data"]["recordAction"]["userErrors"] == [], body
    action = body["data"]["recordAction"]["actions"][0]
    assert action["status"] == "PENDING" and action["evidence"]["sha256"] == evidence["sha256"]
    balance = (
        "query($i: ID!) { individual(id: $i) { credits { balance ledger { kind amount note } } } }"
    )
    body = await api.gql(balance, {"i": student}, subject="resident-a")
    assert body["data"]["individual"]["credits"]["balance"] == 0  # nothing before approval

    # 2. The community manager sees it in the queue and approves it.
    queue = """query($c: ID!) { actionReviewQueue(communityId: $c) { totalCount edges { node {
      id actionType status } } } }"""
    body = await api.gql(queue, {"c": gid("Community", community)}, subject="cm-a0")
    pending = body["data"]["actionReviewQueue"]
    assert [e["node"]["id"] for e in pending["edges"]] == [action["id"]]
    assert pending["totalCount"] == 1
    denied = await api.gql(
        queue, {"c": gid("Community", community)}, subject="resident-a", allow_errors=True
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    review = """mutation($id: ID!, $d: ReviewDecision!) { reviewAction(input: {actionId: $id,
      decision: $d}) { action { status credits } userErrors { code } } }"""
    body = await api.gql(review, {"id": action["id"], "d": "APPROVE"}, subject="cm-a0")
    assert body["data"]["reviewAction"] == {
        "action": {"status": "APPROVED", "credits": 200},
        "userErrors": [],
    }
    again = await api.gql(review, {"id": action["id"], "d": "APPROVE"}, subject="cm-a0")
    assert again["data"]["reviewAction"]["userErrors"] == [{"code": "ALREADY_DECIDED"}]

    # 3. 200 credits, and the community's Scope 3+ reductions grow by the catalog's 200 g.
    body = await api.gql(balance, {"i": student}, subject="resident-a")
    credits = body["data"]["individual"]["credits"]
    assert credits["balance"] == 200
    assert credits["ledger"] == [{"kind": "GRANT", "amount": 200, "note": "CLEAN_PLATE"}]
    body = await api.gql(
        "query($c: ID!) { community(id: $c) { reductions(period: {year: 2025}) { scope3Plus } } }",
        {"c": gid("Community", community)},
        subject="cm-a0",
    )
    assert body["data"]["community"]["reductions"]["scope3Plus"] == 200

    # 5. A redeem succeeds, and 6. the ledger explains the balance.
    body = await api.gql(
        """mutation($o: ID!) { createReward(input: {ownerId: $o, name: "Tea",
      costCredits: 150, stock: 2, validFrom: "2025-01-01"}) { reward { id } } }""",
        {"o": gid("Community", community)},
        subject="cm-a0",
    )
    reward = body["data"]["createReward"]["reward"]["id"]
    body = await api.gql(
        """mutation($r: ID!) { redeemReward(input: {rewardId: $r,
      idempotencyKey: "tea-1"}) { balance userErrors { code } } }""",
        {"r": reward},
        subject="resident-a",
    )
    assert body["data"]["redeemReward"] == {"balance": 50, "userErrors": []}
    body = await api.gql(balance, {"i": student}, subject="resident-a")
    credits = body["data"]["individual"]["credits"]
    assert credits["balance"] == sum(e["amount"] for e in credits["ledger"]) == 50
    assert [e["kind"] for e in credits["ledger"]] == ["REDEMPTION", "GRANT"]

    # A reversal takes the credits back out and the reduction off the roll-up.
    body = await api.gql(
        """mutation($id: ID!) { reverseAction(input: {actionId: $id,
      decision: REJECT, reason: "photo of someone else's plate"}) { action { status }
      userErrors { code } } }""",
        {"id": action["id"]},
        subject="cm-a0",
    )
    assert body["data"]["reverseAction"] == {"action": {"status": "REVERSED"}, "userErrors": []}
    body = await api.gql(balance, {"i": student}, subject="resident-a")
    assert body["data"]["individual"]["credits"]["balance"] == -150
    body = await api.gql(
        "query($c: ID!) { community(id: $c) { reductions(period: {year: 2025}) { scope3Plus } } }",
        {"c": gid("Community", community)},
        subject="cm-a0",
    )
    assert body["data"]["community"]["reductions"]["scope3Plus"] == 0

    # 4. The same photo again is refused, whoever sends it.
    response = await upload(api, "cm-a0", student, photo)
    assert (
        response.json()["data"]["uploadEvidence"]["userErrors"][0]["code"] == "DUPLICATE_EVIDENCE"
    )


async def test_bad_files_and_missing_preflight(engine, api, evidence_dir):
    world = await build_world(engine)
    student = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    response = await upload(api, "resident-a", student, b"%PDF-1.4 not an image")
    assert response.json()["data"]["uploadEvidence"]["userErrors"][0]["code"] == "INVALID_EVIDENCE"
    huge = b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024)
    response = await upload(api, "resident-a", student, huge)
    assert response.json()["data"]["uploadEvidence"]["userErrors"][0]["code"] == "INVALID_EVIDENCE"
    response = await upload(api, "resident-a", student, jpeg((1, 2, 3)), preflight=False)
    assert response.status_code == 400  # CSRF: multipart needs the preflight header
    assert not evidence_dir.exists() or not list(evidence_dir.rglob("*.jpeg"))
    # A photo action without a photo, and someone else's photo.
    record = """mutation($a: RecordActionInput!) { recordAction(input: $a) {
      userErrors { code } } }"""
    body = await api.gql(
        record,
        {"a": {"individualId": student, "actionType": "CLEAN_PLATE", "occurredOn": "2025-06-01"}},
        subject="resident-a",
    )
    assert body["data"]["recordAction"]["userErrors"] == [{"code": "EVIDENCE_REQUIRED"}]


async def test_a_full_disk_fails_cleanly_and_grants_nothing(engine, api, evidence_dir):
    world = await build_world(engine)
    student = gid("Individual", world.a.members[world.a.households[world.a.communities[0]][0]][0])
    evidence_dir.parent.mkdir(parents=True, exist_ok=True)
    evidence_dir.write_text("not a directory")  # every write under it fails like a full disk
    response = await upload(api, "resident-a", student, jpeg((9, 9, 9)))
    payload = response.json()["data"]["uploadEvidence"]
    assert payload["evidence"] is None
    assert payload["userErrors"][0]["code"] == "EVIDENCE_NOT_STORED"


async def test_a_photo_from_another_tenant_is_a_duplicate_too(engine, api, evidence_dir):
    """The SHA-256 is unique across all people. On PostgreSQL row-level security hides the
    other tenant's evidence from the look-up, and the unique index still refuses the copy."""
    world = await build_world(engine)
    photo = jpeg((10, 120, 240))
    first = gid("Individual", world.a.all_members[0])
    response = await upload(api, "org-a", first, photo)
    assert response.json()["data"]["uploadEvidence"]["userErrors"] == []
    second = gid("Individual", world.b.all_members[-1])
    payload = (await upload(api, "org-b", second, photo)).json()["data"]["uploadEvidence"]
    assert payload["evidence"] is None
    assert [e["code"] for e in payload["userErrors"]] == ["DUPLICATE_EVIDENCE"]
    assert len(list(evidence_dir.rglob("*.jpeg"))) == 1
