"""The audit log: one append-only ``audit_event`` row per mutation, whatever its outcome.

Every root field of ``Mutation`` gets ``AuditedMutation`` (``audit_mutations`` attaches it when
the schema is built), so a mutation added later is audited without anyone remembering to. The
extension runs the resolver inside a savepoint and writes the event inside it too:

- a successful change and its ``OK`` event commit or roll back together; if the event cannot be
  written, the change is undone;
- a refused mutation (``userErrors``) has already rolled back its own savepoint; its event
  (``USER_ERROR``, ``FORBIDDEN``, ``NOT_FOUND``) is still written;
- a mutation that raised is recorded afterwards (``REFUSED`` for a coded error, ``ERROR``
  otherwise), best effort: the request carries on to report the error either way.

The summary is the mutation's input as the client sent it, minus anything secret: fields
named like secrets, bearer tokens and API keys, uploaded files; long strings and lists are cut.
Personal input (input fields declared with ``personal_input()``, e.g. a person's display name
and e-mail) is never stored in clear: with ``CARBONGRAPH_AUDIT_KEY`` it is stored as
``hmac:<HMAC-SHA256 of the value, 32 hex digits>`` (an operator holding the key can tell which
events carry the same value, or test a given value); without a key, as ``[redacted]``. The
append-only log can then outlive an erasure request.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import orjson
import sqlalchemy as sa
from strawberry import UNSET, relay
from strawberry.extensions import FieldExtension

from carbongraph.authz.api_keys import ApiKeyPrincipal
from carbongraph.errors import CodedError, ErrorCode
from carbongraph.models import AuditEvent

log = logging.getLogger("carbongraph.audit")

A = AuditEvent.__table__

MAX_SUMMARY = 4000
MAX_STRING = 200
MAX_ITEMS = 20
MAX_TARGETS = 50
REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"secret|token|password|credential|apikey|authorization", re.I)
# JWTs (three base64url segments, header starting "eyJ") and our API keys.
_SECRET_VALUE = re.compile(r"^(eyJ[\w-]*\.[\w-]+\.[\w-]*|cgk_\w+)$")
_ID_NAME = re.compile(r"(^ids?$|Ids?$)")
# Metadata key of input fields that carry personal data (set by ``personal_input()``).
PERSONAL = "carbongraph.personal"


def is_personal(field: Any) -> bool:
    """Whether a Strawberry input field is declared personal."""
    return bool((getattr(field, "metadata", None) or {}).get(PERSONAL))


def protect(value: Any, key: str | None) -> Any:
    """Personal input as the log keeps it: keyed hash of its text, or redacted."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [protect(v, key) for v in value]
    if not key:
        return REDACTED
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return "hmac:" + hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


class Outcome:
    OK = "OK"
    USER_ERROR = "USER_ERROR"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    REFUSED = "REFUSED"
    ERROR = "ERROR"


# -- summaries and targets -------------------------------------------------------------------


def sanitize(value: Any, name: str = "", depth: int = 0) -> Any:
    """A JSON-able copy of mutation input with secrets and file contents left out."""
    if name and _SECRET_NAME.search(name):
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        return sanitize(value.value, name, depth)
    if isinstance(value, str):
        if _SECRET_VALUE.match(value):
            return REDACTED
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if depth >= 4:
        return "…"
    if isinstance(value, dict):
        return {str(k): sanitize(v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [sanitize(v, name, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… {len(value) - MAX_ITEMS} more")
        return items
    if hasattr(value, "read") or hasattr(value, "filename"):
        return "[file]"
    return str(value)[:MAX_STRING]


def summary_json(arguments: dict[str, Any]) -> str:
    text = orjson.dumps(sanitize(arguments)).decode()
    if len(text) <= MAX_SUMMARY:
        return text
    # Too long to keep whole (bulk input): the top-level shape says what was sent.
    shape = {k: _shape(v) for k, v in arguments.items()}
    return orjson.dumps({"truncated": True, "input": sanitize(shape)}).decode()[:MAX_SUMMARY]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return f"{len(value)} items"
    return value


def _is_global_id(value: str) -> bool:
    try:
        gid = relay.GlobalID.from_id(value)
    except (ValueError, TypeError):
        return False
    return bool(gid.type_name) and gid.node_id.isdigit()


def input_targets(value: Any, name: str = "", out: list[str] | None = None) -> list[str]:
    """Global IDs named by ``...Id`` / ``...Ids`` input fields."""
    out = [] if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            input_targets(item, str(key), out)
    elif isinstance(value, list | tuple):
        for item in value[:MAX_TARGETS]:
            input_targets(item, name, out)
    elif isinstance(value, str) and _ID_NAME.search(name) and _is_global_id(value):
        out.append(value)
    return out


def payload_targets(payload: Any) -> list[str]:
    """Global IDs of what a payload returns (the created or changed objects)."""
    out: list[str] = []
    for name, value in vars(payload).items() if hasattr(payload, "__dict__") else ():
        if name in ("user_errors", "secret"):
            continue
        for item in value[:MAX_TARGETS] if isinstance(value, list) else [value]:
            gid = _object_id(item)
            if gid:
                out.append(gid)
    return out


def _object_id(item: Any) -> str | None:
    if isinstance(item, str):
        return item if _is_global_id(item) else None
    if isinstance(item, relay.Node):
        definition = getattr(type(item), "__strawberry_definition__", None)
        pk = getattr(item, "pk", None)
        if definition is not None and pk is not None:
            return str(relay.GlobalID(definition.name, str(pk)))
    ident = getattr(item, "id", None)
    if isinstance(ident, str) and _is_global_id(ident):
        return ident
    return None


def targets_column(targets: Iterable[str]) -> str:
    unique = list(dict.fromkeys(targets))[:MAX_TARGETS]
    text = " " + " ".join(unique) + " " if unique else " "
    return text[:4000]


def outcome_of(payload: Any) -> str:
    errors = getattr(payload, "user_errors", None) or []
    if not errors:
        return Outcome.OK
    codes = {str(getattr(e.code, "value", e.code)) for e in errors}
    if "FORBIDDEN" in codes:
        return Outcome.FORBIDDEN
    if "NOT_FOUND" in codes:
        return Outcome.NOT_FOUND
    return Outcome.USER_ERROR


def outcome_of_exception(exc: BaseException) -> str:
    if isinstance(exc, CodedError):
        code = (exc.extensions or {}).get("code")
        if code == ErrorCode.FORBIDDEN:
            return Outcome.FORBIDDEN
        if code == ErrorCode.NOT_FOUND:
            return Outcome.NOT_FOUND
        return Outcome.REFUSED
    return Outcome.ERROR


# -- writing ---------------------------------------------------------------------------------


def event_values(
    *,
    actor_subject: str | None,
    actor_kind: str,
    operation: str,
    outcome: str,
    targets: Iterable[str] = (),
    summary: str = "{}",
    api_key_id: int | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "occurred_at": datetime.now(UTC),
        "actor_subject": actor_subject,
        "actor_kind": actor_kind,
        "api_key_id": api_key_id,
        "request_id": request_id,
        "operation": operation[:64],
        "outcome": outcome,
        "target_ids": targets_column(targets),
        "summary": summary,
    }


async def record(db: Any, **values: Any) -> None:
    """Write one event (``event_values``' arguments): what a mutation's extension writes, and
    what the command line and file imports write for themselves."""
    await db.execute(sa.insert(A).values(**event_values(**values)))


def _actor(ctx: Any) -> tuple[str | None, str, int | None]:
    principal = ctx.viewer.principal
    if isinstance(principal, ApiKeyPrincipal) and ctx.api_key is not None:
        return principal.subject, "API_KEY", ctx.api_key.key_id
    return ctx.viewer.subject, "USER", None


def _plain(value: Any, converter: Any, key: str | None) -> Any:
    """Strawberry input objects as dicts with their GraphQL field names, personal fields
    protected."""
    if isinstance(value, Enum):
        return value.value
    definition = getattr(value, "__strawberry_definition__", None)
    if definition is not None and hasattr(definition, "fields"):
        out = {}
        for field in definition.fields:
            item = getattr(value, field.python_name, UNSET)
            if item is UNSET:
                continue
            plain = _plain(item, converter, key)
            out[converter.get_graphql_name(field)] = (
                protect(plain, key) if is_personal(field) else plain
            )
        return out
    if isinstance(value, list | tuple):
        # Only the head is ever read (a summary keeps MAX_ITEMS, targets MAX_TARGETS, a long
        # list counts as "N items"): a bulk mutation's 10,000 items are not converted for it.
        head = max(MAX_ITEMS, MAX_TARGETS)
        return [_plain(v, converter, key) for v in value[:head]] + list(value[head:])
    if isinstance(value, date | datetime | relay.GlobalID):
        return value.isoformat() if isinstance(value, date | datetime) else str(value)
    return value


def _arguments(info: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The field's arguments as the client named them."""
    converter = info.schema.config.name_converter
    key = getattr(getattr(info.context, "settings", None), "audit_key", None)
    return {
        converter.apply_naming_config(name): _plain(value, converter, key)
        for name, value in kwargs.items()
        if value is not UNSET
    }


async def _write(info: Any, kwargs: dict[str, Any], outcome: str, payload: Any) -> None:
    ctx = info.context
    arguments = _arguments(info, kwargs)
    subject, kind, key_id = _actor(ctx)
    notes = getattr(ctx, "audit_notes", None)
    summary_input: dict[str, Any] = dict(arguments)
    if notes:
        summary_input["recorded"] = dict(notes)
    await record(
        ctx.db,
        actor_subject=subject,
        actor_kind=kind,
        api_key_id=key_id,
        request_id=ctx.request_id,
        operation=info.field_name,
        outcome=outcome,
        targets=[*input_targets(arguments), *payload_targets(payload)],
        summary=summary_json(summary_input),
    )


class AuditedMutation(FieldExtension):
    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        ctx = info.context
        ctx.audit_notes = {}
        try:
            async with ctx.db.savepoint():
                payload = await next_(source, info, **kwargs)
                await _write(info, kwargs, outcome_of(payload), payload)
        except Exception as exc:
            try:
                await _write(info, kwargs, outcome_of_exception(exc), None)
            except Exception:
                log.exception("could not audit the failed mutation %s", info.field_name)
            raise
        return payload


def audit_mutations(mutation_type: type) -> None:
    """Attach ``AuditedMutation`` to every root mutation field (idempotent)."""
    for field in mutation_type.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not any(isinstance(e, AuditedMutation) for e in field.extensions):
            field.extensions.append(AuditedMutation())


def note(caller: Any, **details: Any) -> None:
    """Add facts the input does not carry (e.g. what a revoked grant was) to the event
    (``caller``: a ``carbongraph.caller.Caller``)."""
    notes = getattr(caller, "audit_notes", None)
    if notes is not None:
        notes.update(details)


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in a bare container
        return "cli"
