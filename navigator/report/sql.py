"""The little SQL the report needs beyond what SQLAlchemy makes portable: a timestamp
as Unix seconds (SQLite and PostgreSQL spell it differently), and percentiles by
window functions (SQLite has no percentile aggregate)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, FromClause, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class epoch(FunctionElement[int]):  # lower case: it reads like the SQL function it is
    """A timestamp column as whole Unix seconds (UTC: everything stored is UTC)."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as ISO text, which strftime reads.
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(epoch)
def _epoch_other(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(f"the report supports SQLite and PostgreSQL, not "
                              f"{compiler.dialect.name}")


def percentiles(connection: Connection, source: FromClause, value: str,
                groups: Sequence[str], percents: Sequence[int]
                ) -> dict[tuple[Any, ...], dict[int, Any]]:
    """The `percents` (0-99) of column `value` of `source` (a table or subquery; NULLs
    left out), per combination of the columns `groups`: {group values: {p: value}}.

    The p-th percentile is the value at rank floor(n·p/100) + 1 of the n sorted values
    (for p = 50 the upper median, as /stats counts it). The database ranks the rows with
    window functions; only the rows at those ranks come back.
    """
    columns = source.c
    partition = [columns[g] for g in groups]
    ranked = select(
        *partition,
        func.row_number().over(partition_by=partition, order_by=columns[value]).label("rank"),
        func.count().over(partition_by=partition).label("n"),
        columns[value].label("value"),
    ).where(columns[value].is_not(None)).subquery()
    query = select(*(ranked.c[g] for g in groups), ranked.c.rank, ranked.c.n, ranked.c.value) \
        .where(or_(*(ranked.c.rank == ranked.c.n * p // 100 + 1 for p in percents)))
    found: dict[tuple[Any, ...], dict[int, Any]] = defaultdict(dict)
    size = len(groups)
    for row in connection.execute(query):
        key, rank, n, found_value = tuple(row[:size]), row[size], row[size + 1], row[size + 2]
        for p in percents:
            if n * p // 100 + 1 == rank:
                found[key][p] = found_value
    return dict(found)
