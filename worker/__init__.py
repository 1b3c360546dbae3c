"""The Celery app: ``celery -A worker worker``, ``celery -A worker beat``, ``... flower``.

Its settings come from ``celeryconfig.py`` (read when Celery first needs them).
"""

from celery import Celery
from celery.signals import setup_logging

app = Celery("cachedproxy", include=["worker.tasks"])
app.config_from_object("celeryconfig")


@setup_logging.connect
def _json_logging(**_: object) -> None:
    """Replace Celery's log setup with JSON lines."""
    from shared.logs import configure_logging
    from shared.settings import load_settings

    configure_logging(load_settings().log.level)
