"""Celery settings of ``celery -A worker``, built from cachedproxy's settings.

The values themselves are defined in ``shared/queue.py`` (one place for the worker and the
API); see DESIGN.md decision 7 for the reasons.
"""

from shared.queue import celery_config
from shared.settings import load_settings

globals().update(celery_config(load_settings()))
