"""wrk, the HTTP load generator, as the benchmarks drive it: one Lua script per call
(a fixed method and path, a JSON body whose `$N` becomes a counter, each thread's from
its own billion) and ops/s and p50/p99 latency read off `wrk --latency`."""

import subprocess
import uuid


def script(work, method, path, body, headers=None):
    """Writes the Lua script for one call into `work` (with `headers` besides the JSON
    content type); returns its path."""
    target = work / f"wrk-{uuid.uuid4().hex}.lua"
    body_expr = f"(string.gsub([==[{body}]==], '%$N', tostring(n)))" if body else "nil"
    # Each thread counts from its own billion: no two requests carry the same values
    # (identical metric values are kept once, which would make repeats a different call).
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    target.write_text(f"""
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{extra}
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("first", threads * 1000000000)
end
n = 0
init = function(args)
  n = first or 0
end
request = function()
  n = n + 1
  return wrk.format(nil, "{path}", nil, {body_expr})
end
""")
    return target


def command(url, lua, seconds, threads, connections):
    # A slow server's answer counts as slow, not as an error: wrk's own timeout is 2 s.
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "60s",
            "--latency", "-s", str(lua), url]


def parse(out):
    """(ops/s, p50 ms, p99 ms, failed) from wrk's output: ops/s counts successful
    answers only; `failed` is the number of error answers and socket errors. None if
    nothing succeeded."""
    lines = [l.strip() for l in out.splitlines()]
    total, secs = next((int(l.split()[0]), l.split()[3]) for l in lines if " requests in " in l)
    seconds = ms(secs.rstrip(",")) / 1000
    # Error answers are among the requests counted; socket errors are not.
    error_answers = sum(int(l.split(":")[1]) for l in lines if l.startswith("Non-2xx or 3xx responses:"))
    sockets = next((l.split(":", 1)[1] for l in lines if l.startswith("Socket errors:")), "")
    socket_errors = sum(int(part.split()[-1]) for part in sockets.split(",") if part.strip())
    if error_answers >= total:
        return None
    pct = {l.split()[0]: ms(l.split()[1]) for l in lines if l.startswith(("50%", "99%"))}
    return (total - error_answers) / seconds, pct["50%"], pct["99%"], error_answers + socket_errors


def ms(text):
    """wrk's `850.00us`, `1.20ms`, `2.00s`, `1.50m` in milliseconds."""
    if text.endswith("us"):
        return float(text[:-2]) / 1000
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("m"):
        return float(text[:-1]) * 60000
    return float(text[:-1]) * 1000
