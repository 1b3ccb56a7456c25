"""Business rules as plain functions. They ``flush()`` but never ``commit()``: the caller does."""
