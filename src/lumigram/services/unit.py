"""The unit of work of a use case: it commits when the use case returns and rolls back
when it raises.

A use case is a method decorated with ``@use_case``; its class holds the transaction as
``self._tx`` (a session, or a ``UnitOfWork``). Scopes nest: a use case called by another
(``queue`` asks ``quote``) joins the caller's transaction, and only the outermost scope
commits, so one user intent is one transaction. Work that must happen after the commit
(a provider call, a message) is done outside the decorated method or scheduled as a
follow-up.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar
from weakref import WeakKeyDictionary

P = ParamSpec("P")
R = TypeVar("R")


class Transactional(Protocol):
    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


_depth: WeakKeyDictionary[Any, int] = WeakKeyDictionary()


def _key(tx: Transactional) -> Any:
    # Every gateway of one request shares one session: scopes nest per session.
    return getattr(tx, "session", tx)


@asynccontextmanager
async def unit(tx: Transactional) -> AsyncIterator[None]:
    """One unit of work over ``tx``: commit at the end of the outermost scope; if it
    raises, undo its writes and re-raise.

    Undoing is a rollback to a savepoint taken when the scope began (where the session
    offers ``begin_nested``, as SQLAlchemy's does), then a commit of nothing: unlike a
    full rollback, that leaves the objects the caller already holds (the user of the
    update) loaded, so rendering the refusal needs no new query.
    """
    key = _key(tx)
    depth = _depth.get(key, 0)
    if depth:  # joins the caller's transaction
        _depth[key] = depth + 1
        try:
            yield
        finally:
            _depth[key] = depth
        return
    _depth[key] = 1
    savepoint = getattr(key, "begin_nested", None)
    try:
        if savepoint is None:
            try:
                yield
            except BaseException:
                await tx.rollback()
                raise
        else:
            try:
                async with savepoint():  # rolled back to here if the body raises
                    yield
            except BaseException:
                await tx.commit()  # ends the transaction (and its locks); nothing kept
                raise
        await tx.commit()
    finally:
        _depth.pop(key, None)


class HasTransaction(Protocol):
    @property
    def _tx(self) -> Transactional: ...


S = TypeVar("S", bound=HasTransaction)


def use_case(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Run the method as one unit of work over ``self._tx``."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with unit(self._tx):
            return await method(self, *args, **kwargs)

    return run
