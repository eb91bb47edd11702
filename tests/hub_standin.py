#!/usr/bin/env python3
"""hub_standin.py - a loopback stand-in of the Hugging Face Hub for tests/test_hub_pull.c.

Serves model folders in the Hub's URL layout (127.0.0.1 only):
  GET       /api/models/ORG/NAME/revision/REV   {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET  /ORG/NAME/resolve/REV/FILE          small files: 200, ETag = git blob sha1;
                                                LFS files (*.safetensors, *.bin): 302 to
                                                /lfs-blobs/<sha256> with X-Linked-Etag and
                                                X-Linked-Size; X-Repo-Commit on both
  GET       /lfs-blobs/<sha256>                 the bytes, with Range support (206)
Unknown repos, revisions and files get 404 with the Hub's X-Error-Code. REV is "main" or the
fixed commit COMMIT below.

Options:
  --repo ORG/NAME=DIR   a repository (repeatable)
  --port N              0 (default) = any free port; the port is printed as stdout's first line
  --token T             /api and /resolve answer 401 unless "Authorization: Bearer T" is sent
  --cut FILE:N          the first GET of FILE's LFS blob sends N bytes then drops the connection
  --bad-sha FILE        announce a wrong sha256 for FILE (the bytes served are the true ones)
  --lfs-host HOST       host name put in LFS redirects (default 127.0.0.1; "localhost" makes the
                        redirect go to another host name, so the token must not follow it)
  --log PATH            one line per request: METHOD PATH range=<Range|-> auth=<yes|no>
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "5d3a1f0e9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e"
LFS_SUFFIXES = (".safetensors", ".bin")


class Repo:
    def __init__(self, repo_id, root):
        self.id = repo_id
        self.root = os.path.abspath(root)
        self.files = []
        for dirpath, _, names in os.walk(self.root):
            for n in names:
                self.files.append(os.path.relpath(os.path.join(dirpath, n), self.root))
        self.files.sort()


class State:
    def __init__(self, args):
        self.repos = {}
        for spec in args.repo:
            rid, _, path = spec.partition("=")
            self.repos[rid] = Repo(rid, path)
        self.token = args.token
        self.cut_file, self.cut_n = None, 0
        if args.cut:
            self.cut_file, _, n = args.cut.rpartition(":")
            self.cut_n = int(n)
        self.cut_done = False
        self.bad_sha = args.bad_sha
        self.lfs_host = args.lfs_host
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.blobs = {}  # announced sha256 -> (path, file name)
        self.sha_cache = {}

    def sha256(self, path):
        if path not in self.sha_cache:
            with open(path, "rb") as f:
                self.sha_cache[path] = hashlib.sha256(f.read()).hexdigest()
        return self.sha_cache[path]


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    server_version = "hub-standin/1"

    def log_message(self, fmt, *args):  # keep stderr quiet; requests go to --log
        pass

    def note(self):
        st = self.server.state
        if st.log:
            with st.lock:
                st.log.write("%s %s range=%s auth=%s\n" % (
                    self.command, self.path, self.headers.get("Range", "-"),
                    "yes" if self.headers.get("Authorization") else "no"))

    def reply(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, code, error_code, message):
        self.reply(code, [("X-Error-Code", error_code), ("X-Error-Message", message),
                          ("Content-Type", "application/json")],
                   json.dumps({"error": message}).encode())

    def authorized(self):
        st = self.server.state
        if not st.token:
            return True
        if self.headers.get("Authorization") == "Bearer " + st.token:
            return True
        self.error(401, "GatedRepo", "Access to this model is restricted.")
        return False

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        self.note()
        path = unquote(self.path.split("?", 1)[0])
        parts = path.lstrip("/").split("/")
        st = self.server.state
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
            return self.api(st, parts[2] + "/" + parts[3], "/".join(parts[5:]))
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(st, parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]))
        if len(parts) == 2 and parts[0] == "lfs-blobs":
            return self.blob(st, parts[1])
        self.error(404, "EntryNotFound", "no such path")

    def find_repo(self, st, rid, rev):
        if not self.authorized():
            return None
        repo = st.repos.get(rid)
        if repo is None:
            self.error(404, "RepoNotFound", "Repository Not Found for url: " + self.path)
            return None
        if rev not in ("main", COMMIT):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo

    def api(self, st, rid, rev):
        repo = self.find_repo(st, rid, rev)
        if repo is None:
            return
        body = json.dumps({"id": rid, "modelId": rid, "sha": COMMIT,
                           "siblings": [{"rfilename": f} for f in repo.files]}).encode()
        self.reply(200, [("Content-Type", "application/json")], body)

    def resolve(self, st, rid, rev, name):
        repo = self.find_repo(st, rid, rev)
        if repo is None:
            return
        if name not in repo.files:
            return self.error(404, "EntryNotFound", name + " does not exist on this revision")
        full = os.path.join(repo.root, name)
        if name.endswith(LFS_SUFFIXES):
            sha = st.sha256(full)
            if st.bad_sha == name:
                sha = hashlib.sha256(b"not the bytes of " + name.encode()).hexdigest()
            with st.lock:
                st.blobs[sha] = (full, name)
            host = "%s:%d" % (st.lfs_host, self.server.server_address[1])
            headers = [("X-Repo-Commit", COMMIT), ("X-Linked-Etag", '"%s"' % sha),
                       ("X-Linked-Size", str(os.path.getsize(full))),
                       ("ETag", 'W/"%s"' % hashlib.sha1(sha.encode()).hexdigest()),
                       ("Location", "http://%s/lfs-blobs/%s" % (host, sha))]
            return self.reply(302, headers)
        with open(full, "rb") as f:
            data = f.read()
        self.reply(200, [("X-Repo-Commit", COMMIT), ("ETag", '"%s"' % git_blob_sha1(data)),
                         ("Content-Type", "application/octet-stream")], data)

    def blob(self, st, sha):
        with st.lock:
            entry = st.blobs.get(sha)
        if entry is None:
            return self.error(404, "EntryNotFound", "no such blob")
        full, name = entry
        with open(full, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.reply(416, [("Content-Range", "bytes */%d" % len(data))])
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = False
        with st.lock:
            if st.cut_file == name and not st.cut_done:
                st.cut_done = cut = True
        if cut:  # send part of the body, then drop the connection
            self.wfile.write(body[:st.cut_n])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up mid-transfer (a test aborting a download) is expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", action="append", default=[], required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--cut")
    ap.add_argument("--bad-sha")
    ap.add_argument("--lfs-host", default="127.0.0.1")
    ap.add_argument("--log")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
