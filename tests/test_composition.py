"""Our SDL composes under Apollo Federation composition (@theguild/federation-composition)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from carbongraph.schema.schema import schema
from tests.conftest import REPO

GATEWAY = REPO / "gateway"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None or not (GATEWAY / "node_modules").is_dir():
        pytest.fail("node and gateway/node_modules are needed: run `make test` (it runs npm ci)")
    return path


def compose(
    node: str, tmp_path, *subgraphs: tuple[str, str], check: bool = False
) -> subprocess.CompletedProcess[str]:
    args = [node, str(GATEWAY / "compose.mjs")]
    for name, sdl in subgraphs:
        path = tmp_path / f"{name}.graphql"
        path.write_text(sdl)
        args.append(f"{name}={path}@http://127.0.0.1:8000/graphql")
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_export_schema_composes(node, tmp_path):
    result = compose(node, tmp_path, ("carbongraph", schema.as_str()))
    assert result.returncode == 0, result.stderr
    assert "join__Graph" in result.stdout
    for entity in ("Enterprise", "Community", "Household", "Individual"):
        assert f"type {entity} implements Node" in result.stdout


def test_composes_with_a_partner_extending_our_entities(node, tmp_path):
    partner = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])
    type Individual @key(fields: "id") { id: ID! metroTripCount: Int! }
    type Community @key(fields: "id", resolvable: false) { id: ID! }
    type Station { name: String! community: Community }
    type Query { stations: [Station!]! }
    """
    result = compose(node, tmp_path, ("carbongraph", schema.as_str()), ("metro", partner))
    assert result.returncode == 0, result.stderr


def test_a_conflicting_partner_fails_with_the_composers_message(node, tmp_path):
    partner = """
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"])
    type Individual @key(fields: "id") { id: ID! displayName: Int }
    """
    result = compose(node, tmp_path, ("carbongraph", schema.as_str()), ("bad", partner))
    assert result.returncode == 1
    assert "FIELD_TYPE_MISMATCH" in result.stderr


def test_committed_supergraph_is_current(node):
    committed = (GATEWAY / "subgraphs" / "carbongraph.graphql").read_text()
    assert committed == schema.as_str() + "\n", "run `make supergraph`"
    metro = subprocess.run(
        [sys.executable, "-m", "metro_partner", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "examples" / "metro_partner")},
    ).stdout
    assert (GATEWAY / "subgraphs" / "metro.graphql").read_text() == metro, "run `make supergraph`"
    result = subprocess.run(
        [
            node,
            str(GATEWAY / "compose.mjs"),
            "--check",
            "--out",
            str(GATEWAY / "supergraph.graphql"),
            f"carbongraph={GATEWAY / 'subgraphs' / 'carbongraph.graphql'}"
            "@http://127.0.0.1:8000/graphql",
            f"metro={GATEWAY / 'subgraphs' / 'metro.graphql'}@http://127.0.0.1:4002/graphql",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_malformed_sdl_fails_with_the_parsers_message(node, tmp_path):
    result = compose(node, tmp_path, ("carbongraph", schema.as_str()), ("broken", "type {"))
    assert result.returncode == 1
    assert "Syntax Error" in result.stderr and "broken" in result.stderr
