"""Redis queue and lock providers for LiteFlow (``pip install "liteflow-engine[redis]"``).

``RedisQueueProvider("redis://localhost:6379/0")`` and ``RedisLockProvider(...)``, or in
``configure_workflow_host`` the URL ``"redis://host:port/db"`` as ``queue_service`` or
``lock_service`` (options as query parameters: ``?prefix=app&visibility_timeout=60`` for the
queue, ``?prefix=app&lease=15`` for the lock). Either also accepts a ``redis.Redis`` client, or
``redis+sentinel://s1:26379,s2:26379/mymaster/0`` for a master that Sentinel fails over. The lock
also takes several independent servers, ``redis://a:6379,b:6379,c:6379/0`` or a list of URLs, and
then runs Redlock across them.
"""

try:
    import redis as _redis  # noqa: F401 - fail early, naming the extra
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError('the Redis providers need redis-py: pip install "liteflow-engine[redis]"') from error

from ._lock import RedisLockProvider
from ._queue import RedisQueueProvider

__all__ = ["RedisLockProvider", "RedisQueueProvider"]
