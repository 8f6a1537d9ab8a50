"""Static cost of a GraphQL operation from the schema's ``@cost`` / ``@listSize`` directives
(IBM GraphQL cost spec, as Apollo's and Hive Gateway's demand control compute it), enforced by
a graphql-core validation rule that runs inside Strawberry's validation cache.

The algorithm, per field, through fragments:

* a field costs its ``@cost(weight:)`` plus its type's weight: the type's ``@cost`` when it has
  one, else 1 for an object, interface or union and 0 for a scalar or enum; argument ``@cost``
  weights are added when the argument is given;
* a list multiplies that and everything selected below it by its size: the sized factor its
  parent's ``@listSize(sizedFields:)`` passed down, else ``@listSize(slicingArguments:)``'s
  value (the largest given), else the length of a list argument (``nodes(ids:)``,
  ``_entities(representations:)``: one item per element), else ``@listSize(assumedSize:)``,
  else the default list size (the maximum page);
* a mutation costs 10 more (Apollo).

Variables count with their values: the sizes the request's variables give are part of the
rule's identity, so the validation cache holds one verdict per document and sizes. A size
argument whose variable is absent takes its default, else the worst case (``assumedSize`` or the
default list size). The model read from the schema is built once per schema.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
    is_list_type,
)
from strawberry.extensions import SchemaExtension

from carbongraph import limits
from carbongraph.errors import ErrorCode
from carbongraph.observability import metrics

MUTATION_COST = 10
# Settings' defaults, for a schema executed without our context (scripts, tests).
DEFAULT_MAX_COST = 5000
DEFAULT_LIST_SIZE = 100
COST_LIMIT_EXCEEDED = ErrorCode.COST_LIMIT_EXCEEDED


@dataclass(frozen=True)
class ListSizeSpec:
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldSpec:
    weight: int | None = None  # @cost on the field
    list_size: ListSizeSpec | None = None
    argument_weights: Mapping[str, int] = field(default_factory=dict)
    is_list: bool = False
    list_arguments: tuple[str, ...] = ()  # list-typed arguments: one item per element
    argument_defaults: Mapping[str, int] = field(default_factory=dict)  # sizes, when omitted


@dataclass
class CostModel:
    """What the cost of each field depends on, read once from the schema's directives."""

    fields: dict[tuple[str, str], FieldSpec]
    type_weights: dict[str, int]

    def spec(self, type_name: str, field_name: str) -> FieldSpec:
        return self.fields.get((type_name, field_name), _PLAIN)


_PLAIN = FieldSpec()
_MODELS: weakref.WeakKeyDictionary[GraphQLSchema, CostModel] = weakref.WeakKeyDictionary()


def _directives(element: Any) -> list[Any]:
    definition = (getattr(element, "extensions", None) or {}).get("strawberry-definition")
    return list(getattr(definition, "directives", None) or ())


def _weight(directives: list[Any]) -> int | None:
    weights = [d.weight for d in directives if type(d).__name__ == "Cost"]
    return sum(weights) if weights else None


def model_for(schema: GraphQLSchema) -> CostModel:
    """The cost model of ``schema`` (built on first use, then cached with the schema)."""
    model = _MODELS.get(schema)
    if model is not None:
        return model
    fields: dict[tuple[str, str], FieldSpec] = {}
    type_weights: dict[str, int] = {}
    for type_ in schema.type_map.values():
        if type_.name.startswith("__"):
            continue
        weight = _weight(_directives(type_))
        if weight is not None:
            type_weights[type_.name] = weight
        if not isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            continue
        for name, field_def in type_.fields.items():
            directives = _directives(field_def)
            list_size = None
            for d in directives:
                if type(d).__name__ == "ListSize":
                    list_size = ListSizeSpec(
                        assumed_size=d.assumed_size,
                        slicing_arguments=tuple(d.slicing_arguments or ()),
                        sized_fields=tuple(d.sized_fields or ()),
                    )
            argument_weights = {
                arg_name: w
                for arg_name, arg in field_def.args.items()
                if (w := _weight(_directives(arg))) is not None
            }
            is_list = is_list_type(get_nullable_type(field_def.type))
            list_arguments = tuple(
                arg_name
                for arg_name, arg in field_def.args.items()
                if is_list_type(get_nullable_type(arg.type))
            )
            defaults = {
                arg_name: int(arg.default_value)
                for arg_name, arg in field_def.args.items()
                if isinstance(arg.default_value, int) and not isinstance(arg.default_value, bool)
            }
            spec = FieldSpec(
                weight=_weight(directives),
                argument_defaults=defaults,
                list_size=list_size,
                argument_weights=argument_weights,
                is_list=is_list,
                list_arguments=list_arguments if is_list else (),
            )
            if spec != _PLAIN:
                fields[(type_.name, name)] = spec
    model = CostModel(fields=fields, type_weights=type_weights)
    _MODELS[schema] = model
    return model


# -- sizes from arguments ----------------------------------------------------------------------
def _value_size(node: Any, sizes: Mapping[str, int], defaults: Mapping[str, int]) -> int | None:
    """An argument's size: an Int's value or a list's length; None when unknown."""
    if isinstance(node, VariableNode):
        name = node.name.value
        return sizes.get(name, defaults.get(name))
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, ListValueNode):
        return len(node.values)
    return None


def _argument(node: FieldNode, name: str) -> Any:
    for argument in node.arguments or ():
        if argument.name.value == name:
            return argument.value
    return None


@dataclass
class _Walk:
    schema: GraphQLSchema
    model: CostModel
    fragments: dict[str, FragmentDefinitionNode]
    sizes: Mapping[str, int]
    defaults: Mapping[str, int]
    default_list_size: int

    def selections(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode | None,
        sized: Mapping[str, int],
        seen: frozenset[str],
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection, sized, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                if target is not None:
                    total += self.selections(target, selection.selection_set, sized, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # cycles are a validation error anyway
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                if target is not None:
                    total += self.selections(target, fragment.selection_set, sized, seen | {name})
        return total

    def field(
        self,
        parent: GraphQLNamedType,
        node: FieldNode,
        sized: Mapping[str, int],
        seen: frozenset[str],
    ) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, GraphQLObjectType | GraphQLInterfaceType
        ):
            return 0  # __typename and introspection are free
        field_def = parent.fields.get(name)
        if field_def is None:
            return 0  # an unknown field: another rule reports it
        spec = self.model.spec(parent.name, name)
        named = get_named_type(field_def.type)
        own = spec.weight or 0
        type_weight = self.model.type_weights.get(named.name)
        own += type_weight if type_weight is not None else int(is_composite_type(named))
        own += sum(weight for arg, weight in spec.argument_weights.items() if _argument(node, arg))
        factor = 1
        child_sized: dict[str, int] = {}
        list_size = spec.list_size
        if name in sized:
            factor = sized[name]
        elif list_size is not None and list_size.slicing_arguments:
            given = [
                size
                for arg in list_size.slicing_arguments
                if (size := self._size(spec, node, arg)) is not None and size > 0
            ]
            slice_ = max(given) if given else self._assumed(spec, node)
            if list_size.sized_fields:
                child_sized = dict.fromkeys(list_size.sized_fields, slice_)
            else:
                factor = slice_
        elif spec.is_list:
            factor = self._assumed(spec, node)
        inner = self.selections(named, node.selection_set, child_sized, seen)
        return factor * (own + inner)

    def _size(self, spec: FieldSpec, node: FieldNode, argument: str) -> int | None:
        value = _argument(node, argument)
        if value is None:  # omitted: the argument's default in the schema
            return spec.argument_defaults.get(argument)
        return _value_size(value, self.sizes, self.defaults)

    def _assumed(self, spec: FieldSpec, node: FieldNode) -> int:
        """A list's size without a slicing argument: a list argument's length (one item per
        element), else the declared assumed size, else the default list size."""
        for argument in spec.list_arguments:
            size = self._size(spec, node, argument)
            if size is not None:
                return size
        if spec.list_size is not None and spec.list_size.assumed_size is not None:
            return spec.list_size.assumed_size
        return self.default_list_size


def _variable_defaults(operation: OperationDefinitionNode) -> dict[str, int]:
    defaults = {}
    for definition in operation.variable_definitions or ():
        if definition.default_value is not None:
            size = _value_size(definition.default_value, {}, {})
            if size is not None:
                defaults[definition.variable.name.value] = size
    return defaults


def operation_costs(
    schema: GraphQLSchema,
    document: DocumentNode,
    sizes: Mapping[str, int] | None = None,
    *,
    default_list_size: int = DEFAULT_LIST_SIZE,
) -> dict[str | None, int]:
    """Each operation's cost, by name."""
    model = model_for(schema)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    out: dict[str | None, int] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root = schema.get_root_type(definition.operation)
        if root is None:
            continue
        walk = _Walk(
            schema,
            model,
            fragments,
            sizes or {},
            _variable_defaults(definition),
            default_list_size,
        )
        base = MUTATION_COST if definition.operation is OperationType.MUTATION else 0
        total = base + walk.selections(root, definition.selection_set, {}, frozenset())
        out[definition.name.value if definition.name else None] = total
    return out


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    *,
    default_list_size: int = DEFAULT_LIST_SIZE,
) -> int:
    """The document's cost: its most expensive operation (0 when it has none)."""
    costs = operation_costs(
        schema, document, variable_sizes(variables), default_list_size=default_list_size
    )
    return max(costs.values(), default=0)


def variable_sizes(variables: Mapping[str, Any] | None) -> dict[str, int]:
    """The sizes variables can give: an integer's value, a list's length."""
    sizes: dict[str, int] = {}
    for name, value in (variables or {}).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            sizes[name] = value
        elif isinstance(value, list):
            sizes[name] = len(value)
    return sizes


@lru_cache(maxsize=1024)
def cost_rule(
    max_cost: int, default_list_size: int, sizes: tuple[tuple[str, int], ...] = ()
) -> type[ValidationRule]:
    """The validation rule for one budget and one set of variable sizes. Cached, so that equal
    requests give an equal rule and Strawberry's validation cache answers them."""

    class CostLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            context: ValidationContext = self.context
            costs = operation_costs(
                context.schema, node, dict(sizes), default_list_size=default_list_size
            )
            for name, cost in costs.items():
                if cost > max_cost:
                    label = f"operation {name!r}" if name else "operation"
                    context.report_error(
                        GraphQLError(
                            f"The {label}'s estimated cost {cost} exceeds {max_cost} "
                            "(lists cost their size: see docs/security.md).",
                            extensions={
                                "code": COST_LIMIT_EXCEEDED,
                                "cost": {"estimated": cost, "max": max_cost},
                            },
                        )
                    )

    return CostLimit


def rule_for(
    max_cost: int, default_list_size: int, variables: Mapping[str, Any] | None
) -> type[ValidationRule]:
    return cost_rule(max_cost, default_list_size, tuple(sorted(variable_sizes(variables).items())))


class CostLimitExtension(SchemaExtension):
    """Adds the cost rule for the request's budget (``CARBONGRAPH_MAX_COST``) and variables;
    list it before ``ValidationCache`` so that the cached validation includes it."""

    def on_operation(self) -> Iterator[None]:
        execution_context = self.execution_context
        settings = getattr(execution_context.context, "settings", None)
        max_cost = getattr(settings, "max_cost", DEFAULT_MAX_COST)
        default_list_size = getattr(settings, "max_page_size", DEFAULT_LIST_SIZE)
        execution_context.validation_rules = (
            *execution_context.validation_rules,
            rule_for(max_cost, default_list_size, execution_context.variables),
        )
        yield

    def on_validate(self) -> Iterator[None]:
        yield
        # Counted here, not in the rule: a cached validation does not run the rule again.
        for error in self.execution_context.pre_execution_errors or ():
            if (error.extensions or {}).get("code") == COST_LIMIT_EXCEEDED:
                metrics.refused(COST_LIMIT_EXCEEDED)
                break


def query_cost(
    schema: GraphQLSchema,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    max_tokens: int,
    default_list_size: int = DEFAULT_LIST_SIZE,
) -> int:
    """``estimate`` of a query text (0 when it does not parse: it will not run). Raises
    ``limits.LimitExceeded`` on too many tokens. The same number the validation rule checks."""
    document = limits.parse_cached(query, max_tokens)
    if document is None:
        return 0
    return estimate(schema, document, variables, default_list_size=default_list_size)
