"""A tiny inventory with a bug for zerog's demo to fix."""


def restock(stock: dict[str, int], item: str, count: int) -> dict[str, int]:
    """Return a new stock with ``count`` more of ``item``."""
    updated = dict(stock)
    updated[item] = count
    return updated


def total(stock: dict[str, int]) -> int:
    return sum(stock.values())
