"""wrk, the HTTP load generator, as the benchmarks drive it: one Lua script per call
(a fixed method and path, a JSON body whose `$N` becomes a per-thread counter) and
ops/s and p50/p99 latency read off `wrk --latency`."""

import subprocess
import uuid


def script(work, method, path, body):
    """Writes the Lua script for one call into `work`; returns its path."""
    target = work / f"wrk-{uuid.uuid4().hex}.lua"
    body_expr = f"(string.gsub([==[{body}]==], '%$N', tostring(n)))" if body else "nil"
    target.write_text(f"""
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "{path}", nil, {body_expr})
end
""")
    return target


def command(url, lua, seconds, threads, connections):
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(lua), url]


def parse(out):
    """(ops/s, p50 ms, p99 ms) from wrk's output; None if some answers were errors."""
    if "Non-2xx" in out:
        return None
    rate = float(next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")))
    pct = {l.split()[0]: ms(l.split()[1]) for l in out.splitlines() if l.strip().startswith(("50%", "99%"))}
    return rate, pct["50%"], pct["99%"]


def ms(text):
    """wrk's `850.00us`, `1.20ms`, `2.00s`, `1.50m` in milliseconds."""
    if text.endswith("us"):
        return float(text[:-2]) / 1000
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("m"):
        return float(text[:-1]) * 60000
    return float(text[:-1]) * 1000
