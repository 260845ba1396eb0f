"""Small projects that fail in realistic ways under real tools: pytest, mypy, gcc, terraform.

``zerog bench sweep`` runs them to measure the failure summarizer on real output (tokens of
the summary against the raw output, and how many of the failing test names and error
locations the summary keeps); the tests' fixtures in ``tests/fixtures/failures`` were
captured from them with ``tests/fixtures/capture.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INVENTORY = '''\
"""A small stock-keeping module with a few bugs."""

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    qty: int
    price: float


class Inventory:
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    def add(self, sku: str, qty: int, price: float) -> None:
        self.items[sku] = Item(sku, qty, price)

    def restock(self, sku: str, qty: int) -> None:
        self.items[sku].qty -= qty

    def total_value(self) -> float:
        return sum(item.qty * item.price for item in self.items.values())

    def report(self) -> dict[str, dict[str, float]]:
        return {
            sku: {"qty": item.qty, "value": round(item.qty * item.price, 2)}
            for sku, item in sorted(self.items.items())
        }

    def low_stock(self, threshold: int) -> list[str]:
        return [sku for sku, item in self.items.items() if item.qty < threshold]


def parse_line(line: str) -> Item:
    sku, qty, price = line.split(",")
    return Item(sku.strip(), int(qty), float(price))


def load(lines: list[str]) -> Inventory:
    inventory = Inventory()
    for line in lines:
        item = _lookup(parse_line(line))
        inventory.add(item.sku, item.qty, item.price)
    return inventory


def _lookup(item: Item) -> Item:
    return _validate(item)


def _validate(item: Item) -> Item:
    if item.qty < 0:
        raise ValueError(f"negative quantity for {item.sku}: {item.qty}")
    return item
'''

TEST_INVENTORY = """\
import pytest

from inventory import Inventory, Item, load, parse_line


@pytest.fixture
def stock() -> Inventory:
    inventory = Inventory()
    inventory.add("apple", 10, 0.5)
    inventory.add("pear", 4, 0.75)
    inventory.add("plum", 0, 1.25)
    return inventory


def test_add(stock: Inventory) -> None:
    assert stock.items["apple"] == Item("apple", 10, 0.5)


def test_restock_increases_quantity(stock: Inventory) -> None:
    stock.restock("pear", 6)
    assert stock.items["pear"].qty == 10


def test_total_value(stock: Inventory) -> None:
    assert stock.total_value() == pytest.approx(8.0)


def test_report(stock: Inventory) -> None:
    assert stock.report() == {
        "apple": {"qty": 10, "price": 0.5, "value": 5.0},
        "pear": {"qty": 4, "price": 0.75, "value": 3.0},
        "plum": {"qty": 0, "price": 1.25, "value": 0.0},
    }


def test_low_stock(stock: Inventory) -> None:
    assert stock.low_stock(5) == ["pear", "plum"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("apple, 3, 0.5", Item("apple", 3, 0.5)),
        ("pear,1,0.75", Item("pear", 1, 0.75)),
        ("plum, 2, 1.25, organic", Item("plum", 2, 1.25)),
        ("fig, two, 3.0", Item("fig", 2, 3.0)),
    ],
)
def test_parse_line(line: str, expected: Item) -> None:
    assert parse_line(line) == expected


def test_load_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        load(["apple, -1, 0.5"])


def test_load_many() -> None:
    lines = [f"sku{i}, {i}, 1.0" for i in range(20)]
    inventory = load(lines)
    assert sorted(inventory.items) == [f"sku{i}" for i in range(1, 21)]


def test_load_then_restock() -> None:
    inventory = load(["apple, 1, 0.5"])
    inventory.restock("banana", 3)
    assert inventory.items["apple"].qty == 1
"""

TEST_MANY = """\
import pytest

from inventory import parse_line

LINES = [f"sku{i}, {i}, {i / 4}, note {i}" for i in range(60)]


@pytest.mark.parametrize("line", LINES, ids=[f"sku{i}" for i in range(60)])
def test_parse_line_with_a_note(line: str) -> None:
    item = parse_line(line)
    assert item.qty >= 0
"""

MYPY_MODELS = """\
from dataclasses import dataclass
from typing import Optional


@dataclass
class User:
    id: int
    name: str
    email: Optional[str] = None


def find(users: list[User], user_id: int) -> User:
    for user in users:
        if user.id == user_id:
            return user
    return None


def domain(user: User) -> str:
    return user.email.split("@")[1]


def names(users: list[User]) -> list[str]:
    return [user.id for user in users]


def total_ids(users: list[User]) -> int:
    return sum(user.name for user in users)
"""

MYPY_SERVICE = """\
from models import User, domain, find


def greet(users: list[User], user_id: str) -> str:
    user = find(users, user_id)
    return "hello " + user.id


def count_domains(users: list[User]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for user in users:
        counts[domain(user)] = counts.get(domain(user), "0") + 1
    return counts


def first_email(users: list[User]) -> str:
    return users[0].email


def lookup(users: list[User], ids: list[str]) -> list[User]:
    return [find(users, i) for i in ids]


def rename(user: User, name: bytes) -> None:
    user.name = name
    user.nickname = name
"""

GCC_SOURCE = """\
#include <stdio.h>
#include <string.h>

struct point { int x; int y; };

static int area(struct point a, struct point b) {
    int width = b.x - a.x;
    int height = b.y - a.y;
    int unused = 0;
    return width * heigth;
}

static const char *label(int code) {
    switch (code) {
    case 0: return "ok";
    case 1: return "warn";
    }
}

int main(int argc, char **argv) {
    struct point a = {0, 0};
    struct point b = {3, "4"};
    char buffer[8];
    strcpy(buffer, argv[1])
    printf("%s %d\\n", area(a, b), label(argc));
    int total = sum(argc, argv);
    for (int i = 0; i < argc; i++) {
        total += lenght(argv[i]);
    }
    return heigth + total;
}
"""

TERRAFORM_MAIN = """\
variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "instance_count" {
  type    = number
  default = 3
}

locals {
  name = "web-${var.regoin}"
  tags = { Name = local.name }
}

output "name" {
  value = local.nme
}

output "count" {
  value = var.instance_count + 1
}

module "net" {
  source = "./modules/net"
  cidr   = var.vpc_cidr
}
"""

TERRAFORM_NET = """\
variable "cidr" {
  type = string
}

locals {
  subnets = [for i in range(3) : cidrsubnet(var.cidr, 8, i)]
  first   = local.subnet[0]
  zones   = [for z in var.zones : "${var.region}${z}"]
}

output "subnets" {
  value = local.subnets
}

output "zones" {
  value = local.zones
}
"""


@dataclass(frozen=True)
class Failure:
    """The raw result of running one failing tool."""

    tool: str
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def raw(self) -> str:
        return self.stdout + self.stderr


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _run(tool: str, argv: list[str], cwd: Path, shown: str, env: dict[str, str]) -> Failure:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return Failure(tool, shown, done.returncode, done.stdout, done.stderr)


def _env(root: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CLI_CONFIG_FILE": "/dev/null",
        "CHECKPOINT_DISABLE": "1",
    }


def run_pytest(root: Path) -> Failure:
    _write(root, {"inventory.py": INVENTORY, "test_inventory.py": TEST_INVENTORY})
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_inventory.py"]
    return _run("pytest", argv, root, "pytest test_inventory.py", _env(root))


def run_pytest_many(root: Path) -> Failure:
    """One parametrized test failing the same way in 60 cases: a big, repetitive output."""
    _write(root, {"inventory.py": INVENTORY, "test_many.py": TEST_MANY})
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_many.py"]
    return _run("pytest (60 cases)", argv, root, "pytest test_many.py", _env(root))


def run_mypy(root: Path) -> Failure:
    _write(root, {"models.py": MYPY_MODELS, "service.py": MYPY_SERVICE})
    argv = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "models.py", "service.py"]
    return _run("mypy", argv, root, "mypy --strict models.py service.py", _env(root))


def run_gcc(root: Path) -> Failure:
    _write(root, {"geometry.c": GCC_SOURCE})
    argv = ["gcc", "-Wall", "-Wextra", "-c", "geometry.c", "-o", "geometry.o"]
    return _run("gcc", argv, root, "gcc -Wall -Wextra -c geometry.c", _env(root))


def run_terraform(root: Path) -> Failure:
    _write(root, {"main.tf": TERRAFORM_MAIN, "modules/net/main.tf": TERRAFORM_NET})
    env = _env(root)
    init = subprocess.run(
        ["terraform", "init", "-input=false", "-no-color"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if init.returncode != 0:
        raise RuntimeError(f"terraform init failed: {init.stderr.strip()[-500:]}")
    return _run("terraform", ["terraform", "validate"], root, "terraform validate", env)


RUNNERS = {
    "pytest": run_pytest,
    "pytest-many": run_pytest_many,
    "mypy": run_mypy,
    "gcc": run_gcc,
    "terraform": run_terraform,
}


def available(tool: str) -> bool:
    """Whether the tool can be run here (pytest and mypy are imported from this Python)."""
    if tool in ("pytest", "pytest-many", "mypy"):
        import importlib.util

        return importlib.util.find_spec(tool.split("-")[0]) is not None
    return shutil.which(tool) is not None
