"""Running django-apscheduler 0.7.0's own test suite against this package (see ``run``)."""
