"""Benchmarks behind `scribe bench`: they measure and print figures; tests never time things."""
