"""``bucket(salt)``: a deterministic bucket 0..99 per contact and salt, for holdouts and splits.

The same integer arithmetic runs in SQL (both stores) and in Python (:func:`bucket_of`, for the holdout
policy), so they always agree. With P = 2^31 - 1 (a Mersenne prime) and constants below P taken from
SHA-256 of the salt:

    h1 = ((id mod P) * A + B) mod P        an affine map, different for every salt
    h2 = (h1 * h1 + C) mod P               a square, so the result is not affine in the id
    h3 = (h2 * D + E) mod P
    bucket = h3 mod 100

Every intermediate is below P² + P < 2^63, so neither store overflows its 64-bit integers (ids are
reduced mod P first). The bias of ``mod 100`` over [0, P) is below 100 / 2^31.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, and_, literal
from sqlalchemy.sql.elements import ColumnElement

from ..domain.rules import BUCKETS, Bucket
from ..store.schema import contacts

PRIME = 2**31 - 1


def bucket_constants(salt: str) -> tuple[int, int, int, int, int]:
    """(A, B, C, D, E) from SHA-256 of the salt: six bytes each, reduced mod P; A and D are not 0."""
    digest = hashlib.sha256(salt.encode()).digest()
    a, b, c, d, e = (int.from_bytes(digest[i * 6:i * 6 + 6], "big") % PRIME for i in range(5))
    return a or 1, b, c, d or 1, e


def bucket_of(contact_id: int, salt: str) -> int:
    """The contact's bucket 0..99 for ``salt``, exactly as the SQL computes it."""
    a, b, c, d, e = bucket_constants(salt)
    h1 = ((contact_id % PRIME) * a + b) % PRIME
    h2 = (h1 * h1 + c) % PRIME
    return ((h2 * d + e) % PRIME) % BUCKETS


def bucket_expression(salt: str, contact_id: ColumnElement = contacts.c.id) -> ColumnElement:
    """The bucket of ``contact_id`` as SQL integer arithmetic (every constant a bound parameter)."""
    a, b, c, d, e = (_integer(value) for value in bucket_constants(salt))
    prime = _integer(PRIME)
    h1 = ((contact_id % prime) * a + b) % prime
    h2 = (h1 * h1 + c) % prime
    return ((h2 * d + e) % prime) % _integer(BUCKETS)


def _integer(value: int) -> ColumnElement:
    return literal(value, BigInteger())


def bucket(node: Bucket, salt_prefix: str = "") -> ColumnElement:
    value = bucket_expression(salt_prefix + node.salt)
    if node.op == "between":
        low, high = node.value
        return and_(value >= _integer(low), value <= _integer(high))
    tests = {"eq": value.__eq__, "ne": value.__ne__, "gt": value.__gt__, "gte": value.__ge__,
             "lt": value.__lt__, "lte": value.__le__}
    return tests[node.op](_integer(node.value))
