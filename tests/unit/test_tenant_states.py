"""The `states` a tenant file may list: loaded as written, or refused naming the file and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.tenancy.files import TenantFileError
from tests.support import GOOD_TENANT_FILE as GOOD
from tests.support import load_tenant_file
from tests.support import write_files as write

STATES = """
[[states]]
name = "PENDING"
state_type = "new"
default_create = true

[[states]]
name = "IN_PROGRESS"
state_type = "open"
default_follow_up = true

[[states]]
name = "COMPLETED"
state_type = "closed"

[[states]]
name = "AUTO_CLOSE"
state_type = "pending close"
next_state = "COMPLETED"
"""


def with_states(states: str) -> str:
    # Arrays of tables must come after the top-level keys: append them at the end of the document.
    return GOOD + states


def test_listed_states_are_loaded_in_order(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"t.toml": with_states(STATES)}) / "t.toml"
    states = load_tenant_file(path, tmp_path / "data").states
    assert [(s.name, s.state_type, s.next_state, s.default_create, s.default_follow_up) for s in states] == [
        ("PENDING", "new", None, True, False),
        ("IN_PROGRESS", "open", None, False, True),
        ("COMPLETED", "closed", None, False, False),
        ("AUTO_CLOSE", "pending close", "COMPLETED", False, False),
    ]


def test_no_states_means_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"t.toml": GOOD}) / "t.toml"
    assert load_tenant_file(path, tmp_path / "data").states == ()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("default_follow_up = true", "default_create = true", r"^t\.toml: states: exactly one active state must be default_create$"),  # noqa: E501
        ('name = "COMPLETED"', 'name = "pending"', r"^t\.toml: states\[2\]\.name: 'pending' appears twice$"),
        ('next_state = "COMPLETED"', 'next_state = "NOWHERE"', r"^t\.toml: states\[3\]\.next_state: must name another active state$"),  # noqa: E501
        ('next_state = "COMPLETED"\n', "", r"^t\.toml: states\[3\]\.next_state: required for a pending close state$"),
        ('state_type = "closed"', 'state_type = "finished"', r"^t\.toml: states\[2\]\.state_type: 'finished' is not one of"),  # noqa: E501
    ],
    ids=["two default_create", "duplicate name (any case)", "unknown next_state", "pending close without next",
         "unknown state type"],
)  # fmt: skip
def test_bad_states_are_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert STATES.count(old) == 1
    path = write(tmp_path / "tenants", {"t.toml": with_states(STATES.replace(old, new))}) / "t.toml"
    with pytest.raises(TenantFileError, match=message):
        load_tenant_file(path, tmp_path / "data")
