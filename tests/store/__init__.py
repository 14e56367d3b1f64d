"""Tests of ``loopwise.store``; ``conformance.py`` is the suite every backend must pass."""
