"""Concrete search spaces. Each module is one space; the ``nasframe.spaces`` entry points register them."""
