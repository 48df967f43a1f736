"""0.7.0 tests that fail on purpose here: this package differs from 0.7 in these ways.

Each is listed, with the same reason, in the README's "Differences from
django-apscheduler 0.7". The run fails if one of them starts passing (strict xfail).
"""

EXPECTED_FAILURES: dict[str, str] = {}
