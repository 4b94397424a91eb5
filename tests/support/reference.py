"""What an uninterrupted, unpartitioned run leaves: the same users seeded into a scratch database and migrated there."""

from docshift.demo import seed_users

from .fingerprints import by_user


def one_partition_result(env, users: int, seed: int, target: str = "4") -> dict:
    """`by_user` of `users` users of `seed` after `docshift migrate TARGET --batch-size 100` (in-process) on a
    database of their own, which is dropped again."""
    other = env.client[env.database + "_one"]
    try:
        seed_users(other, users, seed=seed)
        result = env.cli("migrate", target, "--batch-size", "100", extra={"DOCSHIFT_DATABASE": other.name})
        assert result.returncode == 0, result.stderr
        return by_user(other.users)
    finally:
        env.client.drop_database(other.name)
