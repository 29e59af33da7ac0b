"""One Redis round trip per notify() from sync code, on channels-redis: the
``FastPath`` publisher (``publisher``), its delivery to channels on other Redis hosts
(``crossshard``), its Lua scripts (``scripts``) and the RESP exchange it runs them
with (``resp``)."""

from realtime.fastpath.publisher import PIPELINE, FastPath, fast_path
from realtime.fastpath.resp import CLIENT_NAME

__all__ = ["CLIENT_NAME", "PIPELINE", "FastPath", "fast_path"]
