import unittest

from inventory import restock, total


class RestockTest(unittest.TestCase):
    def test_adds_to_existing_item(self) -> None:
        self.assertEqual(restock({"apple": 2}, "apple", 3), {"apple": 5})

    def test_new_item(self) -> None:
        self.assertEqual(restock({}, "pear", 1), {"pear": 1})

    def test_does_not_mutate(self) -> None:
        stock = {"apple": 2}
        restock(stock, "apple", 1)
        self.assertEqual(stock, {"apple": 2})

    def test_total(self) -> None:
        self.assertEqual(total({"apple": 2, "pear": 3}), 5)


if __name__ == "__main__":
    unittest.main()
