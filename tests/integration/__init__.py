"""Tests through the real stack, which tests/runner.py starts for them."""
