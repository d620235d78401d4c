"""The snapshot reader at scale, its blob cache, and the store's compare-and-swap."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError, ConflictError, NotFoundError
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from tests.repos.conftest import AUTHOR
from tests.repos.fleet import appliance_yaml, write_fleet


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory, example_repo_dir: Path) -> RepoStore:
    base = tmp_path_factory.mktemp("fleet")
    write_fleet(example_repo_dir, base / "src", 1000)
    store = RepoStore(base / "repos")
    store.create("fleet", base / "src", author=AUTHOR)
    return store


def test_thousand_appliances_load_and_next_commit_parses_one_file(fleet_store: RepoStore
                                                                   ) -> None:
    reader = SnapshotReader()
    repo = fleet_store.open("fleet")
    first = reader.load(repo, fleet_store.head("fleet"))
    assert len(first.appliance_names()) == 1000
    assert reader.parses == 1000 + 3  # appliances + tenant, users, groups
    assert first.desired("box-00042").hostname == "box-00042.fleet.example"

    changed = appliance_yaml(42, site_suffix="-moved").encode()
    second_id = fleet_store.commit_files(
        "fleet", {"appliances/box-00042.yaml": changed}, message="move box 42",
        author=AUTHOR, expected_head=first.commit)
    second = reader.load(repo, second_id)
    assert reader.parses == 1000 + 3 + 1
    assert second.desired("box-00042").site == "Site 42-moved"
    assert second.changed_appliances(first) == ["box-00042"]


def test_shared_file_change_touches_every_appliance(store, make_tenant_repo,
                                                    example_repo_dir: Path) -> None:
    make_tenant_repo()
    reader = SnapshotReader()
    repo = store.open("brightsmile")
    before = reader.load(repo, store.head("brightsmile"))
    users = (example_repo_dir / "users.yaml").read_text().replace("Dr. Sarah Kim", "Dr. S. Kim")
    after_id = store.commit_files("brightsmile", {"users.yaml": users.encode()},
                                  message="rename", author=AUTHOR, expected_head=before.commit)
    after = reader.load(repo, after_id)
    assert after.changed_appliances(before) == ["branch", "front-office", "lab"]
    assert after.desired("front-office").users.users[0].full_name == "Dr. S. Kim"


def test_compare_and_swap_refuses_a_stale_head(store, make_tenant_repo) -> None:
    make_tenant_repo()
    head = store.head("brightsmile")
    store.commit_files("brightsmile", {"README.md": b"one\n"}, message="one", author=AUTHOR,
                       expected_head=head)
    with pytest.raises(ConflictError, match="moved"):
        store.commit_files("brightsmile", {"README.md": b"two\n"}, message="two",
                           author=AUTHOR, expected_head=head)
    repo = store.open("brightsmile")
    assert repo[store.head("brightsmile")].tree["README.md"].data == b"one\n"


def test_invalid_commit_is_cached_as_invalid_and_reports_again(store, make_tenant_repo) -> None:
    make_tenant_repo()
    reader = SnapshotReader()
    head = store.head("brightsmile")
    bad = store.commit_files("brightsmile", {"groups.yaml": b"kind: [\n"}, message="break",
                             author=AUTHOR, expected_head=head)
    repo = store.open("brightsmile")
    for _ in range(2):
        with pytest.raises(ConfigError) as info:
            reader.load(repo, bad)
        assert str(info.value.issues[0]).startswith("groups.yaml:2:1: YAML syntax error")


def test_unknown_appliance_is_not_found(store, make_tenant_repo) -> None:
    make_tenant_repo()
    snapshot = SnapshotReader().load(store.open("brightsmile"), store.head("brightsmile"))
    with pytest.raises(NotFoundError):
        snapshot.desired("nope")
