"""The lab: many bench hosts driven through Celery with a Redis broker, one history, one
evidence store (``rig lab worker | submit | status``)."""
