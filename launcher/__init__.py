"""Running the whole system on one machine: ``python -m launcher`` is ``make run``."""
