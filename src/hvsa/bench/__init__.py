"""Benchmarks and plots: experiment grids over data folders, pure scoring and tables."""
