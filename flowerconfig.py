"""Flower's settings, read by ``celery -A worker flower`` from the working directory.

Flower binds to loopback unless ``[flower] address`` / ``FLOWER_ADDRESS`` says otherwise,
and always asks for a login: ``[flower] basic_auth`` / ``FLOWER_BASIC_AUTH``, or one
generated at first start into run/flower-credentials. It keeps at most
``[flower] max_tasks`` tasks in memory.
"""

from shared.config.credentials import flower_basic_auth
from shared.config.live import settings_or_exit

_settings = settings_or_exit()
address = _settings.flower.address
port = _settings.flower.port
basic_auth = flower_basic_auth(_settings)[0]
# Flower keeps every task it hears of (100,000 by default): a tick a second adds up.
max_tasks = _settings.flower.max_tasks
