"""Celery settings of ``celery -A worker``, built from this process's settings.

The values themselves, and the reasons for them, are in ``shared/queue.py`` (one place
for the worker and the API).
"""

from shared.config.live import process_settings
from shared.queue import celery_config

globals().update(celery_config(process_settings().get()))
