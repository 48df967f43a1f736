"""APScheduler 3 jobs stored in the Django database, safe with any number of schedulers."""

__version__ = "1.0.0.dev0"
