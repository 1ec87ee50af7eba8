"""Query limits: what a request may ask for, priced before anything runs.

Strawberry ships no limits; these are turned on deliberately (all configurable in
:class:`~api.settings.Settings`, 0 turns one off):

* **tokens** (default 2,000): the parser stops counting at the limit, so a huge document
  costs no more than a small one to refuse;
* **depth** (10) and **aliases** (15): counted on the syntax tree before validation,
  since validating an alias bomb is itself quadratic;
* **cost** (10,000 points): a static analysis of the operation with its variables, see
  :func:`analyse`; the cost of every analysed operation is returned in
  ``extensions.cost``;
* **request body** (1 MB): :class:`BodyLimit`, before the body is parsed as JSON.

``first`` is capped at 100 by the domain (``domain.pagination``). Every refusal is a
GraphQL error with a code (``QUERY_TOO_DEEP``, ``TOO_MANY_ALIASES``, ``TOO_MANY_TOKENS``,
``QUERY_TOO_COSTLY``, ``REQUEST_TOO_LARGE``), never a 5xx, and nothing runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    parse,
    validate,
)
from graphql.pyutils import Undefined
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from domain.errors import ErrorCode, RequestRejected
from domain.pagination import DEFAULT_PAGE_SIZE

__all__ = ["DEFAULT_LIST_SIZE", "Analysis", "BodyLimit", "Limits", "QueryGuard", "analyse"]

#: the assumed length of a list field that takes no ``first`` (members' communities, tags...)
DEFAULT_LIST_SIZE = 10
_TOKENS_MESSAGE = "Document contains more than"
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2_000
    max_cost: int = 10_000
    #: added per root field of a mutation: writes cost more than reads
    mutation_cost: int = 10
    #: drop "Did you mean …?" from errors (outside development: they map the schema for a caller
    #: who may not introspect it)
    hide_suggestions: bool = False


@dataclass(frozen=True, slots=True)
class Analysis:
    depth: int
    aliases: int
    cost: int


def _count_aliases(document: DocumentNode) -> int:
    """Aliased fields anywhere in the document (all operations and fragments)."""
    count = 0
    stack: list[SelectionSetNode] = [
        d.selection_set for d in document.definitions if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode) and selection.alias is not None:
                count += 1
            selection_set = getattr(selection, "selection_set", None)
            if selection_set is not None:
                stack.append(selection_set)
    return count


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name is not None and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


class _Pricer:
    """Depth and cost of one operation; fragments are priced once each (no blow-up)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, tuple[int, int]] = {}
        self.visiting: set[str] = set()

    def _size(self, node: FieldNode, field: GraphQLField, parent: Any) -> int:
        """How many items this field returns at most: ``first``, or an assumed list size."""
        if "first" in field.args:
            value: Any = Undefined
            for argument in node.arguments or ():
                if argument.name.value != "first":
                    continue
                if isinstance(argument.value, IntValueNode):
                    value = int(argument.value.value)
                elif isinstance(argument.value, VariableNode):
                    value = self.variables.get(argument.value.name.value, Undefined)
                elif isinstance(argument.value, NullValueNode):
                    value = None
            if value is Undefined:
                value = field.args["first"].default_value
            if isinstance(value, int) and not isinstance(value, bool):
                return max(value, 0)
            return DEFAULT_PAGE_SIZE
        field_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if isinstance(field_type, GraphQLList):
            # a connection's edges and nodes are already counted by its ``first``
            return 1 if getattr(parent, "name", "").endswith("Connection") else DEFAULT_LIST_SIZE
        return 1

    def selection_set(self, selection_set: SelectionSetNode, parent: Any) -> tuple[int, int]:
        """(depth, cost) of a selection set under *parent* (a GraphQL type)."""
        depth = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name.startswith("__"):
                    continue  # introspection: served from the schema, and off outside development
                fields = parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
                field = fields.get(name)
                if field is None or selection.selection_set is None:
                    depth = max(depth, 1)
                    continue
                child_depth, child_cost = self.selection_set(selection.selection_set, get_named_type(field.type))
                depth = max(depth, 1 + child_depth)
                cost += 1 + self._size(selection, field, parent) * child_cost
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition is not None else parent
                child_depth, child_cost = self.selection_set(selection.selection_set, target or parent)
                depth, cost = max(depth, child_depth), cost + child_cost
            elif isinstance(selection, FragmentSpreadNode):
                child_depth, child_cost = self.fragment(selection.name.value)
                depth, cost = max(depth, child_depth), cost + child_cost
        return depth, cost

    def fragment(self, name: str) -> tuple[int, int]:
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.visiting:
            return 0, 0  # unknown or cyclic: validation refuses it
        self.visiting.add(name)
        target = self.schema.get_type(definition.type_condition.name.value)
        result = self.selection_set(definition.selection_set, target)
        self.visiting.discard(name)
        self.memo[name] = result
        return result


def analyse(schema: GraphQLSchema, document: DocumentNode, *, operation_name: str | None = None,
            variables: dict[str, Any] | None = None, mutation_cost: int = 10) -> Analysis:
    """Depth, alias count and cost of the operation that would run.

    Cost model (documented in the README):

    * every field with a selection set costs 1, times the number of items its parent
      returns; scalar fields are free;
    * a field with ``first`` returns ``first`` items (its declared default when absent);
      a list field without ``first`` is assumed to return ``DEFAULT_LIST_SIZE`` (10);
      a connection's ``edges``/``nodes`` are counted by the connection's ``first``;
    * each root field of a mutation adds ``mutation_cost``.

    So ``members(first: 50) { edges { node { followers(first: 10) { edges { node { id } } } } } }``
    costs ``1 + 50 × (1 + 1 × (1 + (1 + 10 × (1 + 1))))`` = 1,201 points.
    """
    aliases = _count_aliases(document)
    operation = _operation(document, operation_name)
    if operation is None:
        return Analysis(depth=0, aliases=aliases, cost=0)
    root = schema.get_root_type(operation.operation)
    depth, cost = _Pricer(schema, document, variables).selection_set(operation.selection_set, root)
    if operation.operation is OperationType.MUTATION:
        cost += mutation_cost * sum(1 for s in operation.selection_set.selections if isinstance(s, FieldNode))
    return Analysis(depth=depth, aliases=aliases, cost=max(cost, 1))


#: longer documents are parsed every time: 512 cached 1 MB documents would hold 512 MB
_CACHED_QUERY_LENGTH = 20_000


@lru_cache(maxsize=512)
def _parse_cached(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    if len(query) > _CACHED_QUERY_LENGTH:
        return parse(query, max_tokens=max_tokens)
    return _parse_cached(query, max_tokens)


@lru_cache(maxsize=512)
def _validate_cached(schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...],
                     hide_suggestions: bool) -> list[GraphQLError]:
    return validate(schema, document, rules, hide_suggestions=hide_suggestions)


def _validate(schema: GraphQLSchema, document: DocumentNode, rules: tuple[Any, ...], hide_suggestions: bool,
              query: str | None) -> list[GraphQLError]:
    if query is None or len(query) > _CACHED_QUERY_LENGTH:
        return validate(schema, document, rules, hide_suggestions=hide_suggestions)
    return _validate_cached(schema, document, rules, hide_suggestions)


def _reject(message: str, code: ErrorCode, **details: object) -> GraphQLError:
    return GraphQLError(message, original_error=RequestRejected(message, code=code, details=details))


#: asks the rate limiter for *cost* points; returns None when admitted, else seconds to wait
Admit = Callable[[int], Awaitable[float | None]]


class QueryGuard(SchemaExtension):
    """Applies :class:`Limits` around parsing and validation (replaces ``ParserCache`` and
    ``ValidationCache``: documents and their validation are cached per query text).

    A document that fails to parse is left for Strawberry to parse again inside its own
    error handling, so syntax errors (and the token limit) reach clients through the usual
    error policy with a code (``ParserCache`` raises outside it, and the code was lost).

    Order inside validation: depth and aliases on the syntax tree, then the schema's
    validation rules (cached per document), then the cost, then the rate limiter (the
    context's ``admit``, when set) is charged the cost.
    """

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self.cost: int | None = None

    def on_operation(self) -> Iterator[None]:
        if self.limits.max_tokens:  # for Strawberry's own parse of a document that failed ours
            self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            if self.limits.hide_suggestions and (error.original_error is None
                                                 or isinstance(error.original_error, GraphQLError)):
                # variable coercion ("Value 'ADMN' does not exist in … Did you mean 'ADMIN'?") too
                error.message = _SUGGESTION.sub("", error.message)
            if error.original_error is None and _TOKENS_MESSAGE in error.message:
                error.message = f"the query has more than {self.limits.max_tokens} tokens"
                error.extensions = {"code": ErrorCode.TOO_MANY_TOKENS.value, "limit": self.limits.max_tokens}

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query is not None:
            try:
                ctx.graphql_document = _parse(ctx.query, self.limits.max_tokens or None)
            except GraphQLError:
                pass
        yield

    async def on_validate(self) -> AsyncIterator[None]:  # type: ignore[override]
        ctx = self.execution_context
        document = ctx.graphql_document
        assert document is not None
        limits = self.limits
        schema = ctx.schema._schema
        analysis = analyse(schema, document, operation_name=ctx.operation_name, variables=ctx.variables,
                           mutation_cost=limits.mutation_cost)
        if limits.max_depth and analysis.depth > limits.max_depth:
            ctx.pre_execution_errors = [_reject(
                f"the query is {analysis.depth} levels deep; at most {limits.max_depth} are allowed",
                ErrorCode.QUERY_TOO_DEEP, limit=limits.max_depth, actual=analysis.depth)]
        elif limits.max_aliases and analysis.aliases > limits.max_aliases:
            ctx.pre_execution_errors = [_reject(
                f"the query uses {analysis.aliases} aliases; at most {limits.max_aliases} are allowed",
                ErrorCode.TOO_MANY_ALIASES, limit=limits.max_aliases, actual=analysis.aliases)]
        else:
            ctx.pre_execution_errors = _validate(schema, document, tuple(ctx.validation_rules),
                                                 limits.hide_suggestions, ctx.query)
            if not ctx.pre_execution_errors:
                self.cost = analysis.cost
                if limits.max_cost and analysis.cost > limits.max_cost:
                    ctx.pre_execution_errors = [_reject(
                        f"the query costs {analysis.cost} points; at most {limits.max_cost} are allowed "
                        "(lower `first` or ask for fewer nested lists)",
                        ErrorCode.QUERY_TOO_COSTLY, limit=limits.max_cost, actual=analysis.cost)]
                else:
                    admit: Admit | None = getattr(ctx.context, "admit", None)
                    wait = await admit(analysis.cost) if admit is not None else None
                    if wait is not None:
                        ctx.pre_execution_errors = [_reject(
                            f"rate limit exceeded; retry in {wait:.1f} s",
                            ErrorCode.RATE_LIMITED, retryAfter=round(wait, 3))]
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "maximum": self.limits.max_cost}}


class BodyLimit:
    """Refuses HTTP bodies over *max_bytes* with 413 and a GraphQL error, before parsing."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_bytes:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the body up to the limit (at most max_bytes are held), then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.responses import JSONResponse

        message = f"the request body is larger than {self.max_bytes} bytes"
        body = {"errors": [{"message": message, "extensions": {"code": ErrorCode.REQUEST_TOO_LARGE.value,
                                                               "limit": self.max_bytes}}]}
        await JSONResponse(body, status_code=413)(scope, receive, send)
