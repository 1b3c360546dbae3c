"""Flower's settings, read by ``celery -A worker flower`` from the working directory.

Flower binds to loopback unless ``[flower] address`` / ``FLOWER_ADDRESS`` says otherwise.
"""

from shared.settings import load_settings

_settings = load_settings()
address = _settings.flower.address
port = _settings.flower.port

