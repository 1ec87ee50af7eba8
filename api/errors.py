"""How errors reach clients: expected ones readable with a code, unexpected ones masked.

* Domain errors (:class:`~domain.errors.QuanziError`) raised in resolvers keep their
  message and get ``extensions.code`` (and ``extensions.field``).
* Syntax and validation errors, and variables of the wrong type, keep their message (code
  ``GRAPHQL_VALIDATION_FAILED``).
* Anything else is logged with the request id and its full traceback, and the client
  sees ``Internal server error`` with code ``INTERNAL`` and the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from domain.errors import QuanziError

__all__ = ["ErrorPolicy"]

log = logging.getLogger("quanzi.errors")


def _bad_variable(error: GraphQLError) -> bool:
    """A variable that failed coercion ("Variable '$k' has invalid value: …"): the caller's input.

    graphql-core keeps the scalar's exception as ``original_error`` (a GraphQLError, or the
    ValueError of a custom scalar); it is a request error, not a crash.
    """
    return error.path is None and error.message.startswith("Variable '$")


class ErrorPolicy(SchemaExtension):
    def _request_id(self) -> str:
        context = self.execution_context.context
        return str(getattr(context, "request_id", "-"))

    def _one(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError) or _bad_variable(error):
            extensions = dict(error.extensions or {})
            extensions.setdefault("code", "GRAPHQL_VALIDATION_FAILED")
            error.extensions = extensions
            return error
        if isinstance(original, UnicodeEncodeError):
            # a lone surrogate in a string argument (possible in a GraphQL string literal)
            error.message = "a string argument is not valid Unicode (lone surrogate)"
            error.extensions = {"code": "VALIDATION_FAILED"}
            return error
        if isinstance(original, QuanziError):
            extensions = {"code": original.code.value}
            if original.field is not None:
                extensions["field"] = original.field
            extensions.update(getattr(original, "details", {}))
            error.extensions = extensions
            return error
        request_id = self._request_id()
        log.error(
            "unexpected error in GraphQL operation (request %s) at %s",
            request_id,
            ".".join(str(p) for p in (error.path or [])),
            exc_info=original,
        )
        return GraphQLError(
            "Internal server error",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL", "requestId": request_id},
        )

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [self._one(e) for e in errors]

    def on_stream_result(self, result: Any) -> Iterator[None]:  # type: ignore[override]
        """Subscription results (one per event, or the error that ended it) follow the same policy."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self._one(e) for e in errors]
        yield
