#!/usr/bin/python3
"""Runs a command against a real S3 server on loopback, with a fault-injecting proxy.

    s3_harness.py [--timeout SECONDS] -- COMMAND ARGS...

Starts an S3 server on 127.0.0.1 (a free port), chosen by CAIRN_S3_SERVER:
"moto", "s3rver", or "auto" (the default: moto when the machine has it, else
s3rver). moto_server runs with SigV4 enforced (INITIAL_NO_AUTH_ACTION_COUNT:
the first requests, which create an IAM user, its policy and its access key,
are the only unsigned ones); s3rver (npm, installed by `make deps`) checks
the V4 signatures of its one identity, S3RVER/S3RVER. The harness creates a
bucket, starts the proxy below on another free port, runs COMMAND with

    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (the server),
    CAIRN_S3_PROXY (the proxy's URL), CAIRN_S3_BUCKET,
    CAIRN_S3_SERVER ("moto" or "s3rver": tests leave out what a server lacks, saying so),
    CAIRN_S3_SESSION ("KEY SECRET TOKEN": temporary credentials of an assumed role; moto only)

and stops everything. Exits with COMMAND's status, or 77 (ctest's skip) with a
printed reason when neither server can be found or started.

The proxy (loopback only) forwards each HTTP request to moto and can, on
command, answer it with a fault instead. Control requests go to the proxy
itself, never to moto:

    GET /__proxy/fault?mode=M&count=N[&method=GET][&secs=S][&p=P&seed=X][&status=S&code=C]
        the next N requests (of that method) get fault M:
        drop      read the request, close the connection without an answer
        503, 429  answer that status with an S3 error body
        error     answer HTTP `status` with S3 error code `code` (&status=400&code=ExpiredToken)
        stall     read the request, send nothing for S seconds, close
        truncate  forward, then send the answer's head and half its body, close
        lose      forward (moto acts on it), then close without an answer
        random    each request: with probability P one of the faults above
                  (or of those listed in modes=drop,503,...)
    GET /__proxy/stats   "total N" and one "METHOD N" line per method (forwarded + faulted)
    GET /__proxy/last    the request line and headers of the last request (as received)
    GET /__proxy/reset   forget faults and counts
"""
import glob
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

# Three fixes to moto 5.2 where it differs from S3 (the harness applies them
# when starting it). 1: moto checks a signature against the *decoded* request URL (werkzeug's
# request.url), so any key or query value with a percent-encoded byte
# (a+b, é, prefix=run/) fails with SignatureDoesNotMatch even from boto3,
# whose signature is right. The harness starts moto with the check fed the
# raw URL as sent (werkzeug's RAW_URI), as S3 does.
MOTO_MAIN = r"""
import sys
from urllib.parse import urlsplit, urlunsplit
try:
    from moto.core import authorization, responses
    _setup = responses.BaseResponse.setup_class
    def setup_class(self, request, full_url, headers, *a, **kw):
        env = getattr(request, "environ", None) or {}
        self._cairn_raw_uri = env.get("RAW_URI")
        return _setup(self, request, full_url, headers, *a, **kw)
    responses.BaseResponse.setup_class = setup_class
    _auth = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action
    def auth(self, cls, resource="*"):
        raw = getattr(self, "_cairn_raw_uri", None)
        if raw:
            u = urlsplit(self.uri)
            r = urlsplit(raw)
            saved, self.uri = self.uri, urlunsplit((u.scheme, u.netloc, r.path, r.query, ""))
            try:
                return _auth(self, cls, resource)
            finally:
                self.uri = saved
        return _auth(self, cls, resource)
    authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = auth
    # moto checks If-None-Match and then stores, unlocked, on a threaded
    # server: two racing create-only writes can both succeed. S3 makes the
    # check and the store one step; so does this lock.
    import threading
    from moto.s3 import responses as s3r
    _lock = threading.Lock()
    def locked(fn):
        def run(self, *a, **kw):
            if not (getattr(self, "headers", None) or {}).get("If-None-Match"):
                return fn(self, *a, **kw)
            with _lock:
                return fn(self, *a, **kw)
        return run
    s3r.S3Response.put_object = locked(s3r.S3Response.put_object)
    s3r.S3Response._key_response_post = locked(s3r.S3Response._key_response_post)
    # 3: moto answers a ranged GET by copying the whole object first, so
    # each range of a 1 GiB object costs as much as reading all of it; S3's
    # cost follows the range. A single-range GET here reads just its bytes.
    import re
    from moto.s3 import models as s3m
    _tl = threading.local()
    _value = s3m.FakeKey.value
    class _Ranged:
        def __init__(self, key):
            self.key = key
        def __len__(self):
            return self.key.contentsize
        def __getitem__(self, sl):
            with self.key.lock:
                self.key._value_buffer.seek(sl.start)
                return self.key._value_buffer.read(sl.stop - sl.start)
    def value_get(self):
        if getattr(_tl, "ranged", False) and self.contentsize > 0:
            return _Ranged(self)
        return _value.fget(self)
    s3m.FakeKey.value = property(value_get, _value.fset)
    _get_object = s3r.S3Response.get_object
    def get_object(self):
        rng = (self.headers.get("Range") or "").strip()
        _tl.ranged = re.fullmatch(r"bytes=(\d+-\d+|-\d+)", rng) is not None
        try:
            return _get_object(self)
        finally:
            _tl.ranged = False
    s3r.S3Response.get_object = get_object
except (ImportError, AttributeError) as e:
    print("s3_harness: moto not patched:", e, file=sys.stderr)
from moto.server import main
sys.exit(main(sys.argv[1:]))
"""

MOTO_SETUP = r"""
import sys, boto3
port = sys.argv[1]
kw = dict(endpoint_url="http://127.0.0.1:" + port, region_name="us-east-1",
          aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="cairn")
iam.put_user_policy(UserName="cairn", PolicyName="all",
    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
k = iam.create_access_key(UserName="cairn")["AccessKey"]
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:" + port, region_name="us-east-1",
                  aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"])
s3.create_bucket(Bucket="cairn-test")
# Temporary credentials with a session token: a role the user assumes (STS).
ukw = dict(kw, aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"])
iam = boto3.client("iam", **ukw)
role = iam.create_role(RoleName="cairn-role", AssumeRolePolicyDocument='{"Version":"2012-10-17",'
    '"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}')["Role"]
iam.put_role_policy(RoleName="cairn-role", PolicyName="all",
    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
c = boto3.client("sts", **ukw).assume_role(RoleArn=role["Arn"], RoleSessionName="cairn")["Credentials"]
print(k["AccessKeyId"], k["SecretAccessKey"], c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
"""


def skip(reason):
    print("SKIP: " + reason, flush=True)
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_moto():
    env = os.environ.get("CAIRN_MOTO_SERVER")
    cands = [env] if env else []
    cands += sorted(glob.glob("/root/.pyenv/versions/*/bin/moto_server"), reverse=True)
    w = shutil.which("moto_server")
    if w:
        cands.append(w)
    for c in cands:
        if c and os.access(c, os.X_OK):
            # Its interpreter (with boto3) sits beside it; the pyenv shim is a
            # script, so prefer the real versions/*/bin path.
            py = os.path.join(os.path.dirname(os.path.realpath(c)), "python")
            if os.access(py, os.X_OK):
                return c, py
    return None, None


def wait_port(port, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


# ------------------------------------------------------------------ proxy

class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.mode, self.count, self.method, self.secs = None, 0, None, 1.0
            self.status, self.code = 500, "InternalError"
            self.p, self.rng = 0.0, random.Random(1)
            self.modes = ["drop", "503", "429", "truncate", "stall", "lose"]
            self.counts = {}
            self.last = b""

    def take(self, method, lines):
        """Counts (and keeps the head of) the request; returns the fault to apply to it, or None."""
        with self.lock:
            self.counts[method] = self.counts.get(method, 0) + 1
            self.last = b"".join(lines)
            if not self.mode or self.count <= 0:
                return None
            if self.method and self.method != method:
                return None
            self.count -= 1
            if self.mode == "random":
                if self.rng.random() >= self.p:
                    return None
                return self.rng.choice(self.modes)
            return self.mode


def read_head(rf):
    lines = []
    while True:
        line = rf.readline(65537)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        lines.append(line)
        if len(lines) > 200:
            return None
    return lines


def header(lines, name):
    name = name.lower()
    for l in lines[1:]:
        k, _, v = l.decode("latin-1").partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def error_answer(status, code=None):
    code = code or ("SlowDown" if status == 503 else "TooManyRequests")
    body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            b"<Message>injected</Message></Error>" % code.encode())
    return (b"HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n"
            % (status, len(body)) + body)


def forward(upstream_port, lines, body):
    """Sends the request to moto over a fresh HTTP/1.0 connection; returns
    (status line, header lines, body) of its answer."""
    method = lines[0].split(b" ")[0]
    req = lines[0].rsplit(b" ", 1)[0] + b" HTTP/1.0\r\n"
    for l in lines[1:]:
        if l.lower().startswith((b"connection:", b"expect:")):
            continue
        req += l
    req += b"\r\n" + body
    with socket.create_connection(("127.0.0.1", upstream_port)) as s:
        s.sendall(req)
        chunks = []
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            chunks.append(c)
    data = b"".join(chunks)
    head, _, rest = data.partition(b"\r\n\r\n")
    hl = head.split(b"\r\n")
    status = int(hl[0].split(b" ")[1])
    kept = [h for h in hl[1:] if not h.lower().startswith((b"connection:", b"transfer-encoding:", b"content-length:"))]
    if method == b"HEAD" or status in (204, 304):
        length = header([b""] + [h + b"\r\n" for h in hl[1:]], "content-length")
        rest = b""
        if length is not None:
            kept.append(b"Content-Length: " + length.encode())
    else:
        kept.append(b"Content-Length: %d" % len(rest))
    return hl[0], kept, rest


def serve_client(conn, upstream_port, faults):
    conn.settimeout(120)
    rf = conn.makefile("rb")
    try:
        while True:
            lines = read_head(rf)
            if not lines:
                return
            parts = lines[0].decode("latin-1").split(" ")
            method, target = parts[0], parts[1] if len(parts) > 1 else "/"
            n = int(header(lines, "content-length") or 0)
            if (header(lines, "expect") or "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = rf.read(n) if n else b""
            if target.startswith("/__proxy/"):
                conn.sendall(control(target, faults))
                continue
            fault = faults.take(method, lines)
            if fault == "drop":
                return
            if fault == "stall":
                time.sleep(faults.secs)
                return
            if fault in ("503", "429"):
                conn.sendall(error_answer(int(fault)))
                continue
            if fault == "error":
                conn.sendall(error_answer(faults.status, faults.code))
                continue
            status, hdrs, rbody = forward(upstream_port, lines, body)
            if fault == "lose":
                return
            if fault == "truncate" and len(rbody) >= 2:
                hdrs = [h for h in hdrs if not h.lower().startswith(b"content-length:")]
                hdrs.append(b"Content-Length: %d" % len(rbody))
                conn.sendall(status + b"\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n" + rbody[: len(rbody) // 2])
                return
            conn.sendall(status + b"\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n" + rbody)
    except (OSError, ValueError, IndexError):
        return
    finally:
        try:
            conn.close()
        except OSError:
            pass


def control(target, faults):
    u = urllib.parse.urlparse(target)
    q = dict(urllib.parse.parse_qsl(u.query))
    if u.path == "/__proxy/fault":
        with faults.lock:
            faults.mode = q.get("mode")
            faults.count = int(q.get("count", "1"))
            faults.method = q.get("method")
            faults.secs = float(q.get("secs", "1"))
            faults.status = int(q.get("status", "500"))
            faults.code = q.get("code", "InternalError")
            faults.p = float(q.get("p", "0.3"))
            faults.rng = random.Random(int(q.get("seed", "1")))
            faults.modes = q.get("modes", "drop,503,429,truncate,stall,lose").split(",")
        body = b"ok\n"
    elif u.path == "/__proxy/stats":
        with faults.lock:
            total = sum(faults.counts.values())
            body = ("total %d\n" % total + "".join("%s %d\n" % kv for kv in sorted(faults.counts.items()))).encode()
    elif u.path == "/__proxy/last":
        with faults.lock:
            body = faults.last
    elif u.path == "/__proxy/reset":
        faults.reset()
        body = b"ok\n"
    else:
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def start_proxy(upstream_port):
    faults = Faults()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve_client, args=(c, upstream_port, faults), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def start_moto(port, log):
    """Starts moto (SigV4 enforced) and creates the IAM key, the bucket and
    an assumed role's temporary credentials; returns (process, settings) or
    (None, reason)."""
    moto, py = find_moto()
    if not moto:
        return None, "no moto_server found (set CAIRN_MOTO_SERVER, or install moto)"
    env = dict(os.environ)
    # The three unsigned requests: CreateUser, PutUserPolicy, CreateAccessKey.
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    server = subprocess.Popen([py, "-c", MOTO_MAIN, "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=log, stderr=log, start_new_session=True)
    if not wait_port(port, time.time() + 60):
        stop(server)
        return None, "moto_server did not start within 60 s"
    try:
        out = subprocess.run([py, "-c", MOTO_SETUP, str(port)], capture_output=True,
                             timeout=120, check=True, text=True).stdout.split()
    except (subprocess.SubprocessError, OSError) as e:
        stop(server)
        return None, "could not create an IAM key and bucket in moto: %s" % e
    key_id, secret, tmp_id, tmp_secret, tmp_token = out[-5:]
    return server, {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
                    # Temporary credentials (an assumed role): key, secret, session token.
                    "CAIRN_S3_SESSION": "%s %s %s" % (tmp_id, tmp_secret, tmp_token)}


def find_s3rver():
    env = os.environ.get("CAIRN_S3RVER")
    cands = [env] if env else []
    w = shutil.which("s3rver")
    if w:
        cands.append(w)
    cands += ["/usr/local/bin/s3rver", "/usr/bin/s3rver"]
    node = shutil.which("node") or shutil.which("nodejs")
    for c in cands:
        if c and os.access(c, os.X_OK) and node:
            return c
    return None


def start_s3rver(port, log, data_dir):
    """Starts s3rver (npm; its one identity is S3RVER/S3RVER, whose V4
    signatures it checks) with the bucket; returns (process, settings) or
    (None, reason)."""
    exe = find_s3rver()
    if not exe:
        return None, "no s3rver found (make deps installs it with npm; or set CAIRN_S3RVER)"
    server = subprocess.Popen([exe, "-d", data_dir, "-a", "127.0.0.1", "-p", str(port), "-s",
                               "--no-vhost-buckets", "--configure-bucket", "cairn-test"],
                              stdout=log, stderr=log, start_new_session=True)
    if not wait_port(port, time.time() + 60):
        stop(server)
        return None, "s3rver did not start within 60 s"
    return server, {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}


def stop(server):
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def main():
    argv = sys.argv[1:]
    timeout = 600.0
    if argv[:1] == ["--timeout"]:
        timeout = float(argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    # CAIRN_S3_SERVER: moto, s3rver, or auto (moto when present, else s3rver).
    want = os.environ.get("CAIRN_S3_SERVER", "auto")
    if want not in ("auto", "moto", "s3rver"):
        print("s3_harness: CAIRN_S3_SERVER must be auto, moto or s3rver", file=sys.stderr)
        return 2
    port = free_port()
    log = open(os.devnull, "wb")
    data_dir = tempfile.mkdtemp(prefix="cairn-s3rver-")
    server, reasons = None, []
    try:
        for kind in (["moto", "s3rver"] if want == "auto" else [want]):
            start = start_moto if kind == "moto" else lambda p, l: start_s3rver(p, l, data_dir)
            server, settings = start(port, log)
            if server:
                break
            reasons.append(settings)
        if not server:
            skip("; ".join(reasons))
        proxy_port = start_proxy(port)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        child_env.update(settings)
        child_env.update({
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % port,
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "CAIRN_S3_PROXY": "http://127.0.0.1:%d" % proxy_port, "CAIRN_S3_BUCKET": "cairn-test",
            "CAIRN_S3_SERVER": kind,
        })
        print("s3_harness: %s on 127.0.0.1:%d" % (kind, port), flush=True)
        try:
            return subprocess.run(argv, env=child_env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            print("s3_harness: %s timed out after %.0f s" % (argv[0], timeout), file=sys.stderr)
            return 1
    finally:
        if server:
            stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
