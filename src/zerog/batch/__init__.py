"""Batches: many goals at once, in a process pool or on Ray, with a shared budget."""
