"""Celery settings of ``celery -A worker``, built from cachedproxy's settings.

The values themselves, and the reasons for them, are in ``shared/queue.py`` (one place
for the worker and the API).
"""

from shared.config.settings import load_settings
from shared.queue import celery_config

globals().update(celery_config(load_settings()))
