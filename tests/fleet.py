"""Hand-off executors for the tests: they keep what they were given instead of sending it anywhere."""

import threading

from django_apscheduler.executors.handoff import FleetFire, HandOffExecutor


class RecordingExecutor(HandOffExecutor):
    """Keeps every fire it is handed, as a queue would; a test plays the worker."""

    def __init__(self, **options):
        super().__init__(**options)
        self.sent: list[FleetFire] = []
        self.sent_event = threading.Event()

    def enqueue(self, fire: FleetFire) -> None:
        self.sent.append(fire)  # list.append is atomic: several sending threads may call this
        self.sent_event.set()


class BrokerDownExecutor(HandOffExecutor):
    """A broker that cannot be reached."""

    def enqueue(self, fire: FleetFire) -> None:
        raise ConnectionError("broker at 127.0.0.1:1 refused the connection")


class ReleasingExecutor(RecordingExecutor):
    """Counts, across instances, the fires sent and the shutdowns (run now builds one per run)."""

    sent_fires: list[FleetFire] = []
    shutdowns: list[bool] = []

    def enqueue(self, fire: FleetFire) -> None:
        ReleasingExecutor.sent_fires.append(fire)

    def shutdown(self, wait: bool = True) -> None:
        ReleasingExecutor.shutdowns.append(wait)
        super().shutdown(wait)


class FlakyBrokerExecutor(RecordingExecutor):
    """A broker a test takes down and brings back; counts every real try to send."""

    first_pause = 0.5
    max_pause = 2.0

    def __init__(self, **options):
        super().__init__(**options)
        self.up = False
        self.tries = 0
        self._tries_lock = threading.Lock()

    def enqueue(self, fire: FleetFire) -> None:
        with self._tries_lock:  # several sending threads
            self.tries += 1
        if not self.up:
            raise ConnectionError("broker at 127.0.0.1:1 refused the connection")
        super().enqueue(fire)


class SlowBrokerExecutor(RecordingExecutor):
    """A broker that takes its time to accept each message."""

    seconds_per_message = 1.5

    def enqueue(self, fire: FleetFire) -> None:
        import time

        time.sleep(self.seconds_per_message)
        super().enqueue(fire)
