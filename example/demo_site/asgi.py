"""The demo site under an ASGI server (uvicorn, hypercorn, granian), scheduler included.

    uvicorn --app-dir example demo_site.asgi:application

``with_scheduler`` starts an AsyncIOScheduler on the server's event loop when the
server starts (ASGI lifespan) and stops it when the server stops; coroutine jobs
run on that loop.
"""

import os

from django.core.asgi import get_asgi_application

from django_apscheduler.asgi import with_scheduler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
application = with_scheduler(get_asgi_application())
