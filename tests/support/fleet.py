"""A fleet of tenant databases beside a test's own: seeded users, some with a user that migration 3 rejects."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from docshift.demo import seed_users

from .env import Env

POISON = "poison_user"
"""The user_id that `Env.break_split_name([POISON], ...)` makes migration 3 reject."""


@dataclass
class Tenants:
    env: Env
    names: list[str]

    @property
    def glob(self) -> str:
        return self.names[0].rsplit("_", 1)[0] + "_*"

    def db(self, name: str):
        return self.env.client[name]

    def versions(self) -> dict[str, int]:
        return {n: (self.db(n)["_migrations"].find_one({"_id": "current"}) or {"version": 1})["version"]
                for n in self.names}

    def poison(self, *names: str) -> None:
        """Give these tenants a user whose `up` of migration 3 raises (after `env.break_split_name([POISON], ...)`)."""
        for name in names:
            self.db(name).users.update_one({"user_id": "user_3"}, {"$set": {"user_id": POISON}})

    def cure(self, *names: str) -> None:
        for name in names:
            self.db(name).users.update_one({"user_id": POISON}, {"$set": {"user_id": "user_3"}})


@contextmanager
def tenants(env: Env, count: int, users: int) -> Iterator[Tenants]:
    """`count` databases `<test database>_tNN` with `users` users each (dropped afterwards)."""
    names = [f"{env.database}_t{i:02d}" for i in range(count)]
    for i, name in enumerate(names):
        seed_users(env.client[name], users, seed=100 + i)
    try:
        yield Tenants(env, names)
    finally:
        for name in names:
            env.client.drop_database(name)
