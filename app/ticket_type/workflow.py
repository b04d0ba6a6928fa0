"""A ticket type's status workflow: which states may follow which, and what the data must hold to enter a state.

States are named, compared case-insensitively like the tenant's unique state names, so that a template's workflow
fits every tenant that has states of those names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.schema_validation import MAX_MESSAGE, json_path, safe_validator, schema_problem
from app.ticket_state.dto import StateType
from app.ticket_type.dto import Workflow
from app.ticket_type.values import is_empty

# Enough to name every missing field of a realistic guard, few enough that a hostile document stays cheap.
MAX_GUARD_ERRORS = 20


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    initial_state: str | None
    # Lower-case from-state to lower-case next states; None when the type declares no transitions.
    transitions: dict[str, frozenset[str]] | None
    guards: dict[str, Any]

    @classmethod
    def compile(cls, workflow: Workflow | None) -> CompiledWorkflow:
        if workflow is None:
            return cls(None, None, {})
        transitions = None
        if workflow.transitions is not None:
            transitions = {
                source.lower(): frozenset(target.lower() for target in targets)
                for source, targets in workflow.transitions.items()
            }
        guards = {name.lower(): safe_validator(schema) for name, schema in workflow.guards.items()}
        return cls(workflow.initialState, transitions, guards)

    def allows(self, current: str | None, target: str) -> bool:
        """Whether a ticket in state `current` may move to `target` (the target's activity is checked apart)."""
        if current is not None and current.lower() == target.lower():
            return False
        if self.transitions is None or current is None:
            return True
        return target.lower() in self.transitions.get(current.lower(), frozenset())

    def guard_problems(self, target: str, data: dict[str, Any]) -> dict[str, str]:
        """Per field UUID, what keeps the ticket's data from entering `target` (empty when nothing does)."""
        validator = self.guards.get(target.lower())
        if validator is None:
            return {}
        # A cleared field ("", null, []) is no value: a guard that requires a field is not satisfied by a clear.
        present = {field_id: value for field_id, value in data.items() if not is_empty(value)}
        reason: dict[str, str] = {}
        for count, error in enumerate(validator.iter_errors(present)):
            if count == MAX_GUARD_ERRORS:
                break
            if error.validator == "required" and not error.absolute_path:
                for field_id in error.validator_value:
                    if field_id not in present:
                        reason.setdefault(field_id, f"required before a ticket may enter {target!r}")
                continue
            path = list(error.absolute_path)
            key = str(path[0]) if path else "data"
            location = json_path(path[1:])
            message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + "…"
            reason.setdefault(key, f"{location}: {message}" if location else message)
        return reason


def workflow_problems(workflow: Workflow, field_ids: set[str]) -> dict[str, str]:
    """What is wrong with a workflow on its own (the tenant's states are checked by the service)."""
    reason: dict[str, str] = {}
    if workflow.transitions is not None:
        seen: set[str] = set()
        for source, targets in workflow.transitions.items():
            where = f"workflow.transitions.{source}"
            if source.lower() in seen:
                reason[where] = "state named twice (state names are case-insensitive)"
            seen.add(source.lower())
            lowered = [target.lower() for target in targets]
            if source.lower() in lowered:
                reason[where] = "a state cannot follow itself"
            elif len(set(lowered)) != len(lowered):
                reason[where] = "a next state is named twice (state names are case-insensitive)"
        initial = (workflow.initialState or "").lower()
        if workflow.initialState is not None and not any(
            source.lower() == initial and targets for source, targets in workflow.transitions.items()
        ):
            reason["workflow.initialState"] = "no transition leads out of the initial state: new tickets would be stuck"
    guarded: set[str] = set()
    for name, schema in workflow.guards.items():
        where = f"workflow.guards.{name}"
        if name.lower() in guarded:
            reason[where] = "state named twice (state names are case-insensitive)"
        elif workflow.initialState is not None and name.lower() == workflow.initialState.lower():
            reason[where] = "the initial state cannot have a guard: use the fields' `required` instead"
        elif (problem := schema_problem(schema)) is not None:
            reason[where] = problem
        elif unknown := sorted(_named_fields(schema) - field_ids):
            reason[where] = f"names fields this type does not have: {', '.join(unknown)}"
        guarded.add(name.lower())
    return reason


def named_states(workflow: Workflow) -> list[tuple[str, str]]:
    """Every state the workflow names, as (where, name), for checking against the tenant's states."""
    named: list[tuple[str, str]] = []
    if workflow.initialState is not None:
        named.append(("workflow.initialState", workflow.initialState))
    for source, targets in (workflow.transitions or {}).items():
        where = f"workflow.transitions.{source}"
        named.append((where, source))
        named.extend((where, target) for target in targets)
    named.extend((f"workflow.guards.{name}", name) for name in workflow.guards)
    return named


def implied_state_types(workflow: Workflow) -> dict[str, StateType]:
    """The state type of each state a template's workflow names, for tenants that lack the state: the initial
    state is `new`, a state nothing may follow is `closed`, any other is `open`."""
    implied: dict[str, StateType] = {}
    for _, name in named_states(workflow):
        if workflow.initialState is not None and name.lower() == workflow.initialState.lower():
            implied.setdefault(name, "new")
        elif any(
            source.lower() == name.lower() and targets for source, targets in (workflow.transitions or {}).items()
        ):
            implied.setdefault(name, "open")
        else:
            implied.setdefault(name, "closed")
    return implied


def _named_fields(schema: dict[str, Any]) -> set[str]:
    """The field UUIDs a guard names at its top level (`required` and `properties`)."""
    names: set[str] = set()
    required = schema.get("required")
    if isinstance(required, list):
        names.update(str(name) for name in required)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        names.update(properties)
    return names
