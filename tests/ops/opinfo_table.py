"""The declarative table of OpInfo entries the default test run checks (placeholder)."""
from __future__ import annotations

import dataclasses

TABLE: dict = {}
