"""Celery settings of ``celery -A worker``, built from this process's settings.

The values themselves, and the reasons for them, are in ``shared/queue.py`` (one place
for the worker and the API).
"""

from shared.config.live import settings_or_exit
from shared.queue import celery_config

globals().update(celery_config(settings_or_exit()))
