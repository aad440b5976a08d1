"""dpplan: plan DP-SGD training budgets."""
__version__ = "0.1.0"
