"""Running one bench group alone (`/usr/bin/python3 tests/bench/<group>.py`):
a Postgres migrated by the worker under test and a Redis of its own, for
the group's run(pg, redis), whose table lines are printed."""

import stack


def main(run):
    pg = stack.Postgres().init()
    redis = stack.Redis().start()
    try:
        res = stack.migrate(["up"], pg.url(),
                            binary=stack.BUILD / "omni-worker")
        if res.returncode:
            raise RuntimeError(res.stderr)
        print("\n".join(run(pg, redis)))
    finally:
        redis.destroy()
        pg.destroy()
