"""Open311 GeoReport v2 on intake, under ``/open311/v2/`` (issue 7 items 1-2).

- ``wire.py``: the spec's XML and JSON, its error body, W3C datetimes.
- ``catalogue.py``: services (the taxonomy's categories), their definitions and attribute checks.
- ``translate.py``: a POST Service Request → ``ReportIn`` (jurisdiction, location, contact,
  attributes); a stored case → a ``request`` record.
- ``queries.py``: GET Service Requests' filters and SQL.
- ``router.py``: the routes (``router``, mounted by ``install``) and the route class that answers
  every failure in the spec's error format.
"""
