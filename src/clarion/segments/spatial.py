"""``near(lat, lon, km)``: the contact's coordinates within a great-circle distance of a point.

The distance is the haversine formula on a sphere of radius 6371.0088 km (the IUGG mean Earth radius),
good to about 0.5 % against the ellipsoid. The SQL compares the haversine term
``a = sin²(Δφ/2) + cos φ₁ cos φ₂ sin²(Δλ/2)`` with ``sin²(km / 2R)`` computed here, which is the same test
as ``2R asin(√a) <= km`` without asin or sqrt (no domain error when rounding pushes ``a`` past 1), so the
store needs only ``sin`` and ``cos``. A bounding box on latitude and longitude comes first, so an index
can cut the candidates; a contact without coordinates is not near anything.

SQLite has ``sin``/``cos`` only when built with its math functions (Python's usually is, from 3.35);
:func:`clarion.store.sqlite_math.register_sqlite_math` adds Python ones to a connection that lacks them.
"""

from __future__ import annotations

import math

from sqlalchemy import and_, func, literal, or_
from sqlalchemy.sql.elements import ColumnElement

from ..domain.rules import Near
from ..store.schema import contacts

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius R1
_DEGREE = math.pi / 180  # radians per degree
_BOX_MARGIN = 1e-9  # degrees, so rounding never drops a point on the box's edge


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula."""
    phi1, phi2 = lat1 * _DEGREE, lat2 * _DEGREE
    a = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin((lon2 - lon1) * _DEGREE / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def near(node: Near) -> ColumnElement:
    latitude, longitude = contacts.c.latitude, contacts.c.longitude
    known = and_(latitude.is_not(None), longitude.is_not(None))
    central = node.km / EARTH_RADIUS_KM  # the central angle, radians
    if central >= math.pi:  # half the circumference or more: everywhere
        return known
    half_dlat = func.sin((latitude - node.latitude) * literal(_DEGREE / 2))
    half_dlon = func.sin((longitude - node.longitude) * literal(_DEGREE / 2))
    haversine = half_dlat * half_dlat + literal(math.cos(node.latitude * _DEGREE)) * \
        func.cos(latitude * literal(_DEGREE)) * half_dlon * half_dlon
    return and_(known, *_bounding_box(node, central), haversine <= literal(math.sin(central / 2) ** 2))


def _bounding_box(node: Near, central: float) -> list[ColumnElement]:
    """Latitude and longitude ranges holding the circle (Matuschek's method); none across a pole."""
    latitude, longitude = contacts.c.latitude, contacts.c.longitude
    dlat = central / _DEGREE + _BOX_MARGIN
    low, high = node.latitude - dlat, node.latitude + dlat
    if low <= -90 or high >= 90:  # the circle holds a pole: every longitude
        return [latitude >= low] if high >= 90 else [latitude <= high]
    ratio = min(1.0, math.sin(central) / math.cos(node.latitude * _DEGREE))
    dlon = math.asin(ratio) / _DEGREE + _BOX_MARGIN
    west, east = node.longitude - dlon, node.longitude + dlon
    box = [latitude.between(low, high)]
    if west < -180:  # across the antimeridian
        box.append(or_(longitude >= west + 360, longitude <= east))
    elif east > 180:
        box.append(or_(longitude >= west, longitude <= east - 360))
    else:
        box.append(longitude.between(west, east))
    return box
