"""gunicorn settings, from the environment. `gunicorn -c gunicorn.conf.py`."""

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("INTAKE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
# Threads, not sync workers: a 12 MB upload over venue Wi-Fi takes longer than any sane
# sync timeout, and a gthread worker's heartbeat does not depend on one request finishing.
# gthread, with each request read in the event loop before it takes a thread: slow clients hold no thread.
worker_class = "request_buffering.BufferingThreadWorker"
threads = int(os.environ.get("INTAKE_THREADS", "8"))
timeout = int(os.environ.get("INTAKE_WORKER_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Empty INTAKE_ACCESS_LOG turns the access log off (load tests); "-" is stdout.
accesslog = os.environ.get("INTAKE_ACCESS_LOG", "-") or None
# One shared control socket in $HOME would let two Intake instances on a machine step on each other.
control_socket_disable = True


def post_worker_init(worker):
    """Every worker offers to run the processor; a host-wide lock lets one of them do it."""
    import photo_processor

    photo_processor.start_in_background(worker.wsgi)


def worker_exit(server, worker):
    import photo_processor

    photo_processor.stop_background()
