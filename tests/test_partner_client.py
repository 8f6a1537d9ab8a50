"""The typed partner client (examples/partner_client): its generated TypeScript types and
persisted-documents manifest are those of the current supergraph and documents, and it
compiles; a stale generation or an API change that breaks its code fails here.

The end-to-end half (the manifest in the gateway's persisted-documents mode) is in
tests/test_federation_e2e.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CLIENT = REPO / "examples" / "partner_client"
BIN = CLIENT / "node_modules" / ".bin"
MANIFEST = CLIENT / "src" / "gql" / "persisted-documents.json"


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    if not (BIN / "graphql-codegen").exists():
        pytest.fail("examples/partner_client/node_modules is missing: run `make test` (npm ci)")


def test_generated_files_are_fresh_and_the_client_compiles() -> None:
    check = _run([str(BIN / "graphql-codegen"), "--config", "codegen.ts", "--check"], CLIENT)
    assert check.returncode == 0, f"stale: run `make partner-client`\n{check.stdout}{check.stderr}"
    tsc = _run([str(BIN / "tsc"), "--noEmit", "-p", "."], CLIENT)
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr


def test_the_manifest_holds_each_document_under_its_sha256() -> None:
    manifest = json.loads(MANIFEST.read_text())
    names = sorted(text.split("(")[0].split()[1] for text in manifest.values())
    assert names == ["CommunityPage", "EsgInventory", "HouseholdStatement"]
    for key, text in manifest.items():
        assert key == hashlib.sha256(text.encode()).hexdigest()
    # Each generated document carries the same hash the client sends.
    generated = (CLIENT / "src" / "gql" / "graphql.ts").read_text()
    for key in manifest:
        assert f'"hash":"{key}"' in generated


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The client beside a copy of the supergraph, as in the repository, sharing node_modules."""
    target = tmp_path / "examples" / "partner_client"
    shutil.copytree(CLIENT, target, ignore=shutil.ignore_patterns("node_modules"))
    (target / "node_modules").symlink_to(CLIENT / "node_modules", target_is_directory=True)
    (tmp_path / "gateway").mkdir()
    shutil.copy(REPO / "gateway" / "supergraph.graphql", tmp_path / "gateway")
    return target


def test_a_changed_document_makes_the_generation_stale(copy: Path) -> None:
    document = copy / "src" / "documents" / "community-page.graphql"
    document.write_text(document.read_text().replace("    timezone\n", "    timezone\n    kind\n"))
    check = _run([str(BIN / "graphql-codegen"), "--config", "codegen.ts", "--check"], copy)
    assert check.returncode != 0
    assert "persisted-documents.json" in check.stdout + check.stderr


def test_an_api_change_that_breaks_the_client_fails_tsc(copy: Path) -> None:
    """The supergraph loses Statement.electricityRanking: regeneration fails on the document
    that asks for it; without it in the document, the code that reads it fails to compile."""
    supergraph = copy.parent.parent / "gateway" / "supergraph.graphql"
    text = supergraph.read_text()
    start = text.index("  electricityRanking: StatementUsageRanking")
    # The field, its description above it, and its directives on the same line.
    description = text.rindex('  """', 0, text.rindex('  """', 0, start))
    supergraph.write_text(text[:description] + text[text.index("\n", start) + 1 :])
    generate = _run([str(BIN / "graphql-codegen"), "--config", "codegen.ts"], copy)
    assert generate.returncode != 0 and "electricityRanking" in generate.stdout + generate.stderr
    document = copy / "src" / "documents" / "household-statement.graphql"
    lines = document.read_text().splitlines(keepends=True)
    document.write_text("".join(line for line in lines if "electricityRanking" not in line))
    generate = _run([str(BIN / "graphql-codegen"), "--config", "codegen.ts"], copy)
    assert generate.returncode == 0, generate.stdout + generate.stderr
    tsc = _run([str(BIN / "tsc"), "--noEmit", "-p", "."], copy)
    assert tsc.returncode != 0 and "electricityRanking" in tsc.stdout
