def median(values: list[float]) -> float:
    """The median of a non-empty list: the middle value once sorted, or the mean of the
    two middle values when the list has an even length."""
    raise NotImplementedError
