#!/usr/bin/env python3
"""Stand-in for Keystone v3 + Nova v2.1, for wattson's tests (issue 31).

    python3 openstack.py --port PORT --data FILE [--faults FILE]

Binds 127.0.0.1:PORT (0 = any free port), prints exactly one line
``ready url=http://127.0.0.1:<port>`` and serves until killed.

Keystone lives under /identity, Nova under /compute (public interface),
/compute-internal and /compute-admin (the catalog's internal and admin
endpoints: same API, distinct paths so a test can see which one a client used).
Shapes, status codes, error bodies and the os-simple-tenant-usage formula follow
nova's and keystone's own api samples and code; see README.md beside this file.

Standard library only. The data file is the cloud (see
tests/fixtures/openstack/cloud.json); the faults file (JSON, re-read on every
request) injects failures; env STANDIN_LOG names a file that gets one JSON line
per request (never a token, password or secret).
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit
from standin_faults import Faults

UTC = dt.timezone.utc
MIN_MICROVERSION = (2, 1)
DEFAULT_MAX_MICROVERSION = "2.96"
TOKEN_LIFETIME = dt.timedelta(hours=1)  # keystone's [token] expiration default
NOVA_FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden",
                    404: "itemNotFound", 405: "badMethod", 409: "conflictingRequest",
                    413: "overLimit", 415: "badMediaType", 429: "overLimit",
                    501: "notImplemented", 503: "serviceUnavailable"}
KEYSTONE_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                   404: "Not Found", 405: "Method Not Allowed", 409: "Conflict"}
# roles that pass nova's/keystone's admin-only defaults (all_tenants, list projects)
ADMIN_ROLES = {"admin"}
# roles that can list a project's own resources
PROJECT_ROLES = {"admin", "member", "reader", "Member", "_member_"}
TRUE_STRINGS = ("1", "t", "true", "on", "y", "yes")  # oslo strutils.bool_from_string
FALSE_STRINGS = ("0", "f", "false", "off", "n", "no")
# nova/api/openstack/compute/schemas/servers.py index_query (+ pagination), the
# keys a 2.75+ request may carry
SERVERS_QUERY_KEYS = set("""access_ip_v4 access_ip_v6 all_tenants auto_disk_config
    availability_zone changes-before changes-since config_drive created_at deleted
    description display_description display_name flavor host hostname image image_ref ip
    ip6 kernel_id key_name launch_index launched_at locked locked_by name node not-tags
    not-tags-any power_state progress project_id ramdisk_id reservation_id
    root_device_name soft_deleted sort_dir sort_key status tags tags-any task_state
    tenant_id terminated_at user_id uuid vm_state limit marker
    pinned_availability_zone""".split())
PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
# nova.api.openstack.common._STATE_MAP, reduced to task_state None
VM_STATE_TO_STATUS = {"active": "ACTIVE", "building": "BUILD", "stopped": "SHUTOFF",
                      "resized": "VERIFY_RESIZE", "paused": "PAUSED", "suspended": "SUSPENDED",
                      "rescued": "RESCUE", "error": "ERROR", "deleted": "DELETED",
                      "soft-delete": "SOFT_DELETED", "shelved": "SHELVED",
                      "shelved_offloaded": "SHELVED_OFFLOADED"}


# ---------------------------------------------------------------- time helpers

def parse_iso(s):
    """ISO 8601 as oslo timeutils.parse_isotime reads it; naive means UTC."""
    if s is None:
        return None
    v = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    return v if v.tzinfo else v.replace(tzinfo=UTC)


def isotime(t):
    """nova.utils.isotime: created/updated ('2017-02-14T19:24:42Z')."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def perfect(t):
    """A naive datetime as nova's JSON serializer writes it (PERFECT_TIME_FORMAT):
    OS-SRV-USG:*, os-simple-tenant-usage started_at/ended_at/start/stop."""
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def keystone_time(t):
    """keystone's token times: '2015-11-07T02:58:43.000000Z'."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now():
    return dt.datetime.now(UTC)


def usage_parse_datetime(s):
    """simple_tenant_usage._parse_datetime: only these three formats, no zone."""
    if not s:
        return now()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError("Invalid datetime string: Datetime is in invalid format")


def parse_microversion(s):
    try:
        major, minor = s.strip().split(".")
        return int(major), int(minor)
    except ValueError:
        return None


# ---------------------------------------------------------------- the cloud

class Cloud:
    def __init__(self, path):
        with open(path) as f:
            d = json.load(f)
        self.raw = d
        self.region = d.get("region", "RegionOne")
        self.max_mv = parse_microversion(d.get("max_microversion", DEFAULT_MAX_MICROVERSION))
        self.domains = {x["id"]: x for x in d.get("domains", [{"id": "default", "name": "Default"}])}
        self.projects = {p["id"]: p for p in d["projects"]}
        self.users = {u["id"]: u for u in d["users"]}
        self.roles = {r["name"]: r for r in d["roles"]}
        self.app_creds = {a["id"]: a for a in d.get("application_credentials", [])}
        self.flavors = {f["name"]: f for f in d["flavors"]}
        self.flavors_by_id = {f["id"]: f for f in d["flavors"]}
        self.servers = []
        for s in d["servers"]:
            s = dict(s)
            for k in ("created", "updated", "launched_at", "terminated_at"):
                s["_" + k] = parse_iso(s.get(k))
            self.servers.append(s)
        self.by_uuid = {s["id"]: s for s in self.servers}

    def domain(self, ref):
        """ref: {"id": ...} or {"name": ...}."""
        if not ref:
            return None
        if "id" in ref:
            return self.domains.get(ref["id"])
        return next((x for x in self.domains.values() if x["name"] == ref.get("name")), None)


class Tokens:
    def __init__(self):
        self.lock = threading.Lock()
        self.live = {}  # token -> dict(user, project, roles, methods, expires, app_cred, uses)

    def issue(self, **ctx):
        tok = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex  # fernet-looking, opaque
        with self.lock:
            self.live[tok] = dict(ctx, uses=0, audit=uuid.uuid4().hex[:22])
        return tok

    def get(self, tok):
        with self.lock:
            ctx = self.live.get(tok)
            if ctx and ctx["expires"] <= now():
                del self.live[tok]
                return None
            return ctx

    def use_for_compute(self, tok, ttl):
        """Count one compute request; False when the faults' TTL is exhausted."""
        with self.lock:
            ctx = self.live.get(tok)
            if ctx is None:
                return False
            if ttl is not None and ctx["uses"] >= int(ttl):
                del self.live[tok]
                return False
            ctx["uses"] += 1
            return True


class HttpError(Exception):
    def __init__(self, status, body, headers=None, raw=None):
        super().__init__(status)
        self.status, self.body, self.headers, self.raw = status, body, headers or {}, raw


def nova_error(status, message):
    return HttpError(status, {NOVA_FAULT_NAMES.get(status, "computeFault"):
                              {"code": status, "message": message}})


def keystone_error(status, message):
    return HttpError(status, {"error": {"code": status, "message": message,
                                        "title": KEYSTONE_TITLES.get(status, "Error")}})


# ---------------------------------------------------------------- the handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wattson-standin/1"
    cloud = None      # set by main
    faults = None
    tokens = None
    log_lock = threading.Lock()

    # silence the default stderr access log
    def log_message(self, fmt, *args):
        pass

    # ----- plumbing

    def base(self):
        return "%s://%s:%d" % ((getattr(self, "scheme", "http"),) + tuple(self.server.server_address[:2]))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def dispatch(self, method):
        parts = urlsplit(self.path)
        self.req_path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        self.body_bytes = self.rfile.read(length) if length else b""
        self.extra_log = {}
        self.resp_headers = {}
        faults = self.faults.current()
        status = 500
        try:
            if faults.get("slow_ms"):
                time.sleep(float(faults["slow_ms"]) / 1000.0)
            p = self.req_path
            if p == "/identity" or p.startswith("/identity/"):
                status, body = self.identity(method, p[len("/identity"):].rstrip("/"))
            else:
                for prefix in ("/compute-internal", "/compute-admin", "/compute"):
                    if p == prefix or p.startswith(prefix + "/"):
                        self.compute_prefix = prefix
                        status, body = self.compute(method, p[len(prefix):].rstrip("/"), faults)
                        break
                else:
                    raise HttpError(404, None, raw=(b"404 Not Found", "text/plain"))
        except HttpError as e:
            status, body = e.status, e.body
            self.resp_headers.update(e.headers)
            if e.raw is not None:
                self.send(status, None, raw=e.raw, method=method)
                self.write_log(method, status)
                return
        except Exception as e:  # a bug here must still answer something
            status, body = 500, {"computeFault": {"code": 500, "message": "stand-in bug: %r" % e}}
        self.send(status, body, method=method)
        self.write_log(method, status)

    def send(self, status, body, raw=None, method="GET"):
        if raw is not None:
            data, ctype = raw
        elif body is None:
            data, ctype = b"", None
        else:
            data, ctype = json.dumps(body, indent=None).encode(), "application/json"
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-openstack-request-id", "req-" + str(uuid.uuid4()))
        for k, v in self.resp_headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def write_log(self, method, status):
        path = os.environ.get("STANDIN_LOG")
        if not path:
            return
        rec = {"ts": now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "method": method,
               "path": self.req_path, "query": {k: v if len(v) > 1 else v[0]
                                                for k, v in self.query.items()},
               "token": bool(self.headers.get("X-Auth-Token")), "status": status}
        rec.update(self.extra_log)
        with self.log_lock, open(path, "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")

    def json_body(self, err):
        try:
            return json.loads(self.body_bytes or b"null")
        except ValueError:
            raise err(400, "Expecting to find valid JSON in request body.")

    # ================================================================ Keystone

    def identity(self, method, p):
        b = self.base() + "/identity"
        version = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                   "links": [{"rel": "self", "href": b + "/v3/"}],
                   "media-types": [{"base": "application/json",
                                    "type": "application/vnd.openstack.identity-v3+json"}]}
        if p == "" and method == "GET":
            self.resp_headers["Location"] = b + "/v3/"
            return 300, {"versions": {"values": [version]}}
        if p == "/v3" and method == "GET":
            return 200, {"version": version}
        if p == "/v3/auth/tokens":
            if method == "POST":
                return self.issue_token(b)
            if method in ("GET", "HEAD"):
                self.identity_caller()
                ctx = self.tokens.get(self.headers.get("X-Subject-Token") or "")
                if ctx is None:
                    raise keystone_error(404, "Could not find token.")
                self.resp_headers["X-Subject-Token"] = self.headers["X-Subject-Token"]
                return 200, self.token_body(ctx)
            if method == "DELETE":
                self.identity_caller()
                with self.tokens.lock:
                    self.tokens.live.pop(self.headers.get("X-Subject-Token") or "", None)
                return 204, None
        if method != "GET":
            raise keystone_error(405, "The requested method is not supported.")
        if p == "/v3/projects":
            ctx = self.identity_caller()
            self.require_admin(ctx, "identity:list_projects")
            items = [self.project_view(x, b) for x in self.cloud.projects.values()]
            return 200, {"links": {"next": None, "previous": None, "self": b + "/v3/projects"},
                         "projects": self.keystone_filter(items)}
        if p.startswith("/v3/projects/"):
            ctx = self.identity_caller()
            pid = p.split("/")[3]
            if pid != ctx["project"]["id"]:
                self.require_admin(ctx, "identity:get_project")
            if pid not in self.cloud.projects:
                raise keystone_error(404, "Could not find project: %s." % pid)
            return 200, {"project": self.project_view(self.cloud.projects[pid], b)}
        if p == "/v3/users":
            ctx = self.identity_caller()
            self.require_admin(ctx, "identity:list_users")
            items = [self.user_view(x, b) for x in self.cloud.users.values()]
            return 200, {"links": {"next": None, "previous": None, "self": b + "/v3/users"},
                         "users": self.keystone_filter(items)}
        if p.startswith("/v3/users/"):
            ctx = self.identity_caller()
            uid = p.split("/")[3]
            if uid != ctx["user"]["id"]:
                self.require_admin(ctx, "identity:get_user")
            if uid not in self.cloud.users:
                raise keystone_error(404, "Could not find user: %s." % uid)
            return 200, {"user": self.user_view(self.cloud.users[uid], b)}
        raise keystone_error(404, "The resource could not be found.")

    def keystone_filter(self, items):
        for k in ("name", "domain_id", "id", "parent_id"):
            if k in self.query:
                items = [x for x in items if x.get(k) == self.query[k][0]]
        for k in ("enabled", "is_domain"):
            if k in self.query:
                want = self.query[k][0].lower() not in ("0", "false", "no", "off")
                items = [x for x in items if bool(x.get(k)) == want]
        return items

    def project_view(self, p, b):
        return {"is_domain": False, "description": p.get("description", ""),
                "domain_id": p.get("domain_id", "default"), "enabled": p.get("enabled", True),
                "id": p["id"], "links": {"self": b + "/v3/projects/" + p["id"]},
                "name": p["name"], "parent_id": p.get("domain_id", "default"),
                "tags": p.get("tags", []), "options": {}}

    def user_view(self, u, b):
        v = {"domain_id": u.get("domain_id", "default"), "enabled": u.get("enabled", True),
             "id": u["id"], "links": {"self": b + "/v3/users/" + u["id"]},
             "name": u["name"], "password_expires_at": None, "options": {}}
        if u.get("default_project_id"):
            v["default_project_id"] = u["default_project_id"]
        return v

    def identity_caller(self):
        ctx = self.tokens.get(self.headers.get("X-Auth-Token") or "")
        if ctx is None:
            self.resp_headers["WWW-Authenticate"] = 'Keystone uri="%s/identity"' % self.base()
            raise keystone_error(401, "The request you have made requires authentication.")
        return ctx

    def require_admin(self, ctx, action):
        if not ADMIN_ROLES & {r["name"] for r in ctx["roles"]}:
            raise keystone_error(403, "You are not authorized to perform the requested "
                                      "action: %s." % action)

    def unauthorized(self):
        self.resp_headers["WWW-Authenticate"] = 'Keystone uri="%s/identity"' % self.base()
        return keystone_error(401, "The request you have made requires authentication.")

    def issue_token(self, b):
        body = self.json_body(keystone_error) or {}
        try:
            ident = body["auth"]["identity"]
            methods = ident["methods"]
        except (KeyError, TypeError):
            raise keystone_error(400, "Invalid input for field 'identity': "
                                      "'methods' is a required property")
        cloud = self.cloud
        self.extra_log["auth_method"] = ",".join(methods)
        app_cred = None
        if "application_credential" in methods:
            ac = ident.get("application_credential") or {}
            app_cred = cloud.app_creds.get(ac.get("id"))
            if app_cred is None and ac.get("name"):
                owner = self.find_user(ac.get("user") or {})
                app_cred = next((a for a in cloud.app_creds.values()
                                 if a["name"] == ac["name"] and owner
                                 and a["user_id"] == owner["id"]), None)
            if app_cred is None or ac.get("secret") != app_cred["secret"]:
                raise self.unauthorized()
            user = cloud.users[app_cred["user_id"]]
            project = cloud.projects[app_cred["project_id"]]
            role_names = app_cred["roles"]
            self.extra_log["user"] = user["name"]
        elif "password" in methods:
            pu = (ident.get("password") or {}).get("user") or {}
            user = self.find_user(pu)
            if user is None or pu.get("password") != user["password"]:
                raise self.unauthorized()
            self.extra_log["user"] = user["name"]
            scope = body["auth"].get("scope") or {}
            if "project" not in scope:
                raise keystone_error(400, "stand-in: only project-scoped tokens are served")
            sp = scope["project"]
            if "id" in sp:
                project = cloud.projects.get(sp["id"])
            else:
                dom = cloud.domain(sp.get("domain"))
                project = next((p for p in cloud.projects.values() if p["name"] == sp.get("name")
                                and dom and p.get("domain_id", "default") == dom["id"]), None)
            role_names = user.get("roles", {}).get(project["id"]) if project else None
            if not role_names:
                raise self.unauthorized()
        else:
            raise keystone_error(400, "stand-in: auth method %s not served" % methods)
        t = now()
        ctx = {"user": user, "project": project, "methods": methods,
               "roles": [cloud.roles[r] for r in role_names], "issued": t,
               "expires": t + TOKEN_LIFETIME, "app_cred": app_cred}
        tok = self.tokens.issue(**ctx)
        self.resp_headers["X-Subject-Token"] = tok
        self.resp_headers["Vary"] = "X-Auth-Token"
        return 201, self.token_body(self.tokens.get(tok))

    def find_user(self, ref):
        if "id" in ref:
            return self.cloud.users.get(ref["id"])
        dom = self.cloud.domain(ref.get("domain"))
        return next((u for u in self.cloud.users.values() if u["name"] == ref.get("name")
                     and dom and u.get("domain_id", "default") == dom["id"]), None)

    def token_body(self, ctx):
        b = self.base()
        dom = self.cloud.domains[ctx["project"].get("domain_id", "default")]
        udom = self.cloud.domains[ctx["user"].get("domain_id", "default")]

        def endpoints(svc, urls):
            return [{"id": hashlib.md5((svc + i).encode()).hexdigest(), "interface": i,
                     "region": self.cloud.region, "region_id": self.cloud.region, "url": u}
                    for i, u in urls]

        tok = {
            "methods": ctx["methods"],
            "user": {"domain": {"id": udom["id"], "name": udom["name"]},
                     "id": ctx["user"]["id"], "name": ctx["user"]["name"],
                     "password_expires_at": None},
            "audit_ids": [ctx["audit"]],
            "expires_at": keystone_time(ctx["expires"]),
            "issued_at": keystone_time(ctx["issued"]),
            "project": {"domain": {"id": dom["id"], "name": dom["name"]},
                        "id": ctx["project"]["id"], "name": ctx["project"]["name"]},
            "is_domain": False,
            "roles": [{"id": r["id"], "name": r["name"]} for r in ctx["roles"]],
            "catalog": [
                {"endpoints": endpoints("compute", [("public", b + "/compute/v2.1"),
                                                    ("internal", b + "/compute-internal/v2.1"),
                                                    ("admin", b + "/compute-admin/v2.1")]),
                 "id": hashlib.md5(b"compute").hexdigest(), "type": "compute", "name": "nova"},
                {"endpoints": endpoints("identity", [("public", b + "/identity"),
                                                     ("internal", b + "/identity"),
                                                     ("admin", b + "/identity")]),
                 "id": hashlib.md5(b"identity").hexdigest(), "type": "identity",
                 "name": "keystone"},
            ],
        }
        if ctx.get("app_cred"):
            a = ctx["app_cred"]
            tok["application_credential"] = {"id": a["id"], "name": a["name"],
                                             "restricted": a.get("restricted", True)}
        return {"token": tok}

    # ================================================================ Nova

    def compute(self, method, p, faults):
        cloud = self.cloud
        cb = self.base() + self.compute_prefix
        max_mv = "%d.%d" % cloud.max_mv
        v21 = {"id": "v2.1", "status": "CURRENT", "version": max_mv, "min_version": "2.1",
               "updated": "2013-07-23T11:33:21Z",
               "links": [{"href": cb + "/v2.1/", "rel": "self"}]}
        if p == "" and method == "GET":
            return 200, {"versions": [v21]}
        if p == "/v2.1" and method == "GET" and not self.headers.get("X-Auth-Token"):
            # the version document answers without a token, as nova's does
            return 200, {"version": dict(v21, **{
                "links": v21["links"] + [{"href": "http://docs.openstack.org/",
                                          "rel": "describedby", "type": "text/html"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]})}
        if not p.startswith("/v2.1"):
            raise HttpError(404, None, raw=(b"404 Not Found", "text/plain"))
        p = p[len("/v2.1"):]

        # keystonemiddleware first: a live token, else 401
        tok = self.headers.get("X-Auth-Token") or ""
        ctx = self.tokens.get(tok)
        if ctx is None or not self.tokens.use_for_compute(tok, faults.get("token_ttl_requests")):
            self.resp_headers["WWW-Authenticate"] = 'Keystone uri="%s/identity"' % self.base()
            raise HttpError(401, {"error": {"code": 401, "title": "Unauthorized",
                                            "message": "The request you have made requires "
                                                       "authentication."}})
        self.ctx = ctx
        self.is_admin = bool(ADMIN_ROLES & {r["name"] for r in ctx["roles"]})

        fail = self.faults.take_failure(faults)
        if fail is not None:
            self.extra_log["fault"] = fail
            if fail in (502, 504):  # what a proxy in front of nova sends
                text = {502: ("Bad Gateway", "The server returned an invalid or incomplete "
                                             "response."),
                        504: ("Gateway Time-out", "The server didn't respond in time.")}[fail]
                html = ("<html><body><h1>%d %s</h1>\n%s\n</body></html>\n"
                        % ((fail,) + text)).encode()
                raise HttpError(fail, None, raw=(html, "text/html"))
            msg = ("Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ "
                   "and attach the Nova API log if possible.\n<class 'oslo_db.exception."
                   "DBConnectionError'>") if fail == 500 else "Service Unavailable"
            raise nova_error(int(fail), msg)

        # microversion (OpenStack-API-Version wins over the legacy header)
        hdr = self.headers.get("OpenStack-API-Version")
        mv_s = None
        if hdr:
            for part in hdr.split(","):
                bits = part.strip().split()
                if len(bits) == 2 and bits[0].lower() == "compute":
                    mv_s = bits[1]
        if mv_s is None:
            mv_s = self.headers.get("X-OpenStack-Nova-API-Version")
        if mv_s is None:
            mv = MIN_MICROVERSION
        elif mv_s.strip() == "latest":
            mv = cloud.max_mv
        else:
            mv = parse_microversion(mv_s)
            if mv is None:
                raise nova_error(400, "API Version String %s is of invalid format. Must be "
                                      "of format MajorNum.MinorNum." % mv_s)
            if not (MIN_MICROVERSION <= mv <= cloud.max_mv):
                raise nova_error(406, "Version %s is not supported by the API. Minimum is "
                                      "2.1 and maximum is %s." % (mv_s, max_mv))
        self.mv = mv
        mvs = "%d.%d" % mv
        self.extra_log["microversion"] = mvs
        self.resp_headers["OpenStack-API-Version"] = "compute " + mvs
        self.resp_headers["X-OpenStack-Nova-API-Version"] = mvs
        self.resp_headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"

        if method != "GET":
            raise nova_error(405, "The stand-in serves only GET on compute.")
        if p == "":
            return 200, {"version": v21}
        if p == "/servers/detail":
            return self.servers_detail(faults)
        if p.startswith("/servers/") and p.count("/") == 2:
            return self.server_show(p.split("/")[2])
        if p == "/flavors/detail":
            return self.flavors_detail()
        if p.startswith("/flavors/") and p.count("/") == 2:
            f = cloud.flavors_by_id.get(p.split("/")[2])
            if f is None:
                raise nova_error(404, "Flavor %s could not be found." % p.split("/")[2])
            return 200, {"flavor": self.flavor_view(f)}
        if p == "/os-simple-tenant-usage":
            return self.usage(None)
        if p.startswith("/os-simple-tenant-usage/") and p.count("/") == 2:
            return self.usage(p.split("/")[2])
        raise nova_error(404, "The resource could not be found.")

    def at_least(self, v):
        return self.mv >= parse_microversion(v)

    def q1(self, key, default=None):
        return self.query[key][0] if key in self.query else default

    def limit_marker(self):
        limit = 1000  # [api] max_limit
        if "limit" in self.query:
            try:
                n = int(self.q1("limit"))
                if n < 0:
                    raise ValueError
            except ValueError:
                raise nova_error(400, "limit must be an integer")
            limit = min(limit, n) if n else limit
        return limit, self.q1("marker")

    def next_link(self, coll, marker_id):
        params = {k: v[0] for k, v in sorted(self.query.items())}
        params["marker"] = marker_id
        return {"rel": "next", "href": "%s%s/v2.1/%s?%s" % (self.base(), self.compute_prefix,
                                                              coll, urlencode(params))}

    # ----- servers

    def status(self, s):
        if s.get("deleted"):
            return "DELETED"
        return VM_STATE_TO_STATUS.get(s["vm_state"], "UNKNOWN")

    def servers_detail(self, faults):
        q = self.query
        if self.at_least("2.75"):  # schema: additionalProperties False from 2.75
            extra = sorted(set(q) - SERVERS_QUERY_KEYS)
            if extra:
                raise nova_error(400, "Invalid input for query parameters %s. Value: %s. "
                                      "Additional properties are not allowed (%s was "
                                      "unexpected)" % (extra[0], q[extra[0]][0],
                                                       ", ".join("'%s'" % e for e in extra)))
        # nova.api.openstack.common.is_all_tenants. 'all_projects' is not nova's: below
        # 2.75 it is silently ignored (own project only), from 2.75 it is a 400.
        all_tenants = False
        if "all_tenants" in q:
            v = q["all_tenants"][0]
            if v == "":
                all_tenants = True
            elif v.lower() in TRUE_STRINGS:
                all_tenants = True
            elif v.lower() not in FALSE_STRINGS:
                raise nova_error(400, "Invalid input received: Unrecognized value '%s', "
                                      "acceptable values are: '0', '1', 'f', 'false', 'n', "
                                      "'no', 'off', 'on', 't', 'true', 'y', 'yes'" % v)
        if all_tenants and not self.is_admin:
            raise nova_error(403, "Policy doesn't allow "
                                  "os_compute_api:servers:detail:get_all_tenants to be performed.")
        since = before = None
        try:
            if "changes-since" in q:
                since = parse_iso(q["changes-since"][0])
            if "changes-before" in q:
                before = parse_iso(q["changes-before"][0])
        except ValueError:
            raise nova_error(400, "Invalid input for query parameters changes-since.")
        if since and before and before < since:
            raise nova_error(400, "The value of changes-since must be less than or equal to "
                                  "changes-before.")
        if "deleted" in q and self.is_admin:
            want_deleted = q["deleted"][0].lower() in TRUE_STRINGS
        elif since is None and before is None:
            want_deleted = False
        else:
            want_deleted = None  # both
        items = []
        for s in self.cloud.servers:
            if not all_tenants and s["project_id"] != self.ctx["project"]["id"]:
                continue
            if all_tenants and self.is_admin:
                if "project_id" in q and s["project_id"] != q["project_id"][0]:
                    continue
                if "tenant_id" in q and s["project_id"] != q["tenant_id"][0]:
                    continue
            if want_deleted is not None and bool(s.get("deleted")) != want_deleted:
                continue
            if since and s["_updated"] < since:
                continue
            if before and s["_updated"] > before:
                continue
            if "user_id" in q and s["user_id"] != q["user_id"][0]:
                continue
            if "host" in q and self.is_admin and s.get("host") != q["host"][0]:
                continue
            if "status" in q and self.status(s) not in [x.upper() for x in q["status"]]:
                continue
            if "name" in q and q["name"][0] not in s["name"]:
                continue
            items.append(s)
        # nova's default sort: created_at desc, id desc (uuid stands in for the db id)
        items.sort(key=lambda s: (s["_created"], s["id"]), reverse=True)
        limit, marker = self.limit_marker()
        start = 0
        if marker is not None:
            idx = next((i for i, s in enumerate(items) if s["id"] == marker), None)
            if idx is None:
                raise nova_error(400, "marker [%s] not found" % marker)
            start = idx + 1
            if faults.get("endless_pages") and start >= len(items):
                start = 0  # a broken cloud: the marker wraps around, pages never end
        page = items[start:start + limit]
        body = {"servers": [self.server_view(s) for s in page]}
        if page and (len(page) == limit or faults.get("endless_pages")):
            body["servers_links"] = [self.next_link("servers/detail", page[-1]["id"])]
        elif faults.get("endless_pages") and items:
            body["servers_links"] = [self.next_link("servers/detail", items[-1]["id"])]
        return 200, body

    def server_show(self, sid):
        s = self.cloud.by_uuid.get(sid)
        if s is None or s.get("deleted") or (
                not self.is_admin and s["project_id"] != self.ctx["project"]["id"]):
            raise nova_error(404, "Instance %s could not be found." % sid)
        return 200, {"server": self.server_view(s)}

    def server_view(self, s):
        cb = self.base() + self.compute_prefix
        f = self.cloud.flavors[s["flavor"]]
        status = self.status(s)
        host = s.get("host")
        if self.at_least("2.47"):
            flavor = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                      "ephemeral": f.get("ephemeral", 0), "swap": f.get("swap", 0),
                      "original_name": f["name"], "extra_specs": f.get("extra_specs", {})}
        else:
            flavor = {"id": f["id"], "links": [{"rel": "bookmark",
                                                "href": cb + "/flavors/" + f["id"]}]}
        addresses = {}
        if s.get("addr") and status not in ("DELETED", "BUILD", "ERROR"):
            addresses = {s.get("network", "private"): [{
                "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:%s" % ":".join(
                    hashlib.md5(s["id"].encode()).hexdigest()[i:i + 2] for i in (0, 2, 4)),
                "OS-EXT-IPS:type": "fixed", "addr": s["addr"], "version": 4}]}
        v = {
            "accessIPv4": "", "accessIPv6": "",
            "addresses": addresses,
            "created": isotime(s["_created"]),
            "flavor": flavor,
            "hostId": hashlib.sha224((s["project_id"] + host).encode()).hexdigest()
            if host else "",
            "id": s["id"],
            "image": {"id": s["image_id"], "links": [
                {"rel": "bookmark", "href": cb + "/images/" + s["image_id"]}]},
            "links": [{"rel": "self", "href": cb + "/v2.1/servers/" + s["id"]},
                      {"rel": "bookmark", "href": cb + "/servers/" + s["id"]}],
            "metadata": s.get("metadata", {}),
            "name": s["name"],
            "status": status,
            "tenant_id": s["project_id"],
            "user_id": s["user_id"],
            "updated": isotime(s["_updated"]),
            "OS-DCF:diskConfig": "MANUAL",
        }
        if status in ("ERROR", "DELETED") and s.get("fault"):
            v["fault"] = dict(s["fault"])
        if status in PROGRESS_STATUSES:
            v["progress"] = 0
        v["OS-EXT-AZ:availability_zone"] = s.get("availability_zone", "nova" if host else "")
        v["config_drive"] = ""
        v["key_name"] = s.get("key_name")
        v["OS-SRV-USG:launched_at"] = perfect(s["_launched_at"])
        v["OS-SRV-USG:terminated_at"] = perfect(s["_terminated_at"])
        if self.is_admin:
            v["OS-EXT-SRV-ATTR:host"] = host
            v["OS-EXT-SRV-ATTR:instance_name"] = s.get("instance_name")
            v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = s.get("node", host)
            if self.at_least("2.3"):
                v.update({"OS-EXT-SRV-ATTR:hostname": s["name"],
                          "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:launch_index": 0,
                          "OS-EXT-SRV-ATTR:ramdisk_id": "",
                          "OS-EXT-SRV-ATTR:reservation_id": s.get("reservation_id", "r-0"),
                          "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                          "OS-EXT-SRV-ATTR:user_data": None})
        v["OS-EXT-STS:task_state"] = s.get("task_state")
        v["OS-EXT-STS:vm_state"] = s["vm_state"]
        v["OS-EXT-STS:power_state"] = s.get("power_state", 0)
        v["os-extended-volumes:volumes_attached"] = []
        if self.at_least("2.9"):
            v["locked"] = False
        if self.at_least("2.16") and self.is_admin:
            v["host_status"] = "UP" if host else ""
        if self.at_least("2.19"):
            v["description"] = s.get("description")
        if self.at_least("2.26"):
            v["tags"] = s.get("tags", [])
        if self.at_least("2.63"):
            v["trusted_image_certificates"] = None
        if self.at_least("2.73"):
            v["locked_reason"] = None
        if self.at_least("2.90") and not self.is_admin:
            v["OS-EXT-SRV-ATTR:hostname"] = s["name"]
        if self.at_least("2.96"):
            v["pinned_availability_zone"] = None
        if addresses:  # ports exist: neutron reports their security groups
            v["security_groups"] = [{"name": "default"}]
        return v

    # ----- flavors

    def flavor_view(self, f):
        cb = self.base() + self.compute_prefix
        swap = f.get("swap", 0)
        v = {"OS-FLV-DISABLED:disabled": False, "disk": f["disk"],
             "OS-FLV-EXT-DATA:ephemeral": f.get("ephemeral", 0),
             "os-flavor-access:is_public": f.get("is_public", True), "id": f["id"],
             "links": [{"href": cb + "/v2.1/flavors/" + f["id"], "rel": "self"},
                       {"href": cb + "/flavors/" + f["id"], "rel": "bookmark"}],
             "name": f["name"], "ram": f["ram"],
             "swap": swap if (swap or self.at_least("2.75")) else "",
             "vcpus": f["vcpus"], "rxtx_factor": f.get("rxtx_factor", 1.0)}
        if self.at_least("2.55"):
            v["description"] = f.get("description")
        if self.at_least("2.61"):
            v["extra_specs"] = f.get("extra_specs", {})
        return v

    def flavors_detail(self):
        items = sorted(self.cloud.flavors.values(), key=lambda f: f["id"])
        limit, marker = self.limit_marker()
        start = 0
        if marker is not None:
            idx = next((i for i, f in enumerate(items) if f["id"] == marker), None)
            if idx is None:
                raise nova_error(400, "marker [%s] not found" % marker)
            start = idx + 1
        page = items[start:start + limit]
        body = {"flavors": [self.flavor_view(f) for f in page]}
        if page and len(page) == limit:
            body["flavors_links"] = [self.next_link("flavors/detail", page[-1]["id"])]
        return 200, body

    # ----- os-simple-tenant-usage (nova/api/openstack/compute/simple_tenant_usage.py)

    def usage(self, tenant_id):
        is_index = tenant_id is None
        if is_index and not self.is_admin:
            raise nova_error(403, "Policy doesn't allow "
                                  "os_compute_api:os-simple-tenant-usage:list to be performed.")
        if not is_index and not self.is_admin and tenant_id != self.ctx["project"]["id"]:
            raise nova_error(403, "Policy doesn't allow "
                                  "os_compute_api:os-simple-tenant-usage:show to be performed.")
        links = self.at_least("2.40")
        if self.at_least("2.75"):  # schema: additionalProperties False from 2.75
            allowed = {"start", "end", "limit", "marker"} | ({"detailed"} if is_index else set())
            extra = sorted(set(self.query) - allowed)
            if extra:
                raise nova_error(400, "Invalid input for query parameters %s. Value: %s. "
                                      "Additional properties are not allowed (%s was "
                                      "unexpected)" % (extra[0], self.q1(extra[0]),
                                                       ", ".join("'%s'" % e for e in extra)))
        try:
            period_start = usage_parse_datetime(self.q1("start"))
            period_stop = usage_parse_datetime(self.q1("end"))
        except ValueError as e:
            raise nova_error(400, str(e))
        if not period_start < period_stop:
            raise nova_error(400, "Invalid start time. The start time cannot occur after the "
                                  "end time.")
        detailed = True if not is_index else self.q1("detailed", "0") == "1"
        t_now = now()
        if period_stop > t_now:
            period_stop = t_now
        limit, marker = self.limit_marker() if links else (1000, None)

        # InstanceList.get_active_by_window_joined: (terminated_at IS NULL or
        # terminated_at > begin) and launched_at < end, deleted rows included,
        # paginated on (project_id, uuid) ascending. NULL launched_at never matches.
        rows = [s for s in self.cloud.servers
                if (s["_terminated_at"] is None or s["_terminated_at"] > period_start)
                and s["_launched_at"] is not None and s["_launched_at"] < period_stop
                and (tenant_id is None or s["project_id"] == tenant_id)]
        rows.sort(key=lambda s: (s["project_id"], s["id"]))
        if marker is not None:
            idx = next((i for i, s in enumerate(rows) if s["id"] == marker), None)
            if idx is None:
                raise nova_error(400, "Marker %s could not be found." % marker)
            rows = rows[idx + 1:]
        rows = rows[:limit]

        rval = {}
        all_usages = []
        for s in rows:
            f = self.cloud.flavors[s["flavor"]]
            info = {"hours": hours_for(s, period_start, period_stop),
                    "flavor": f["name"], "instance_id": s["id"], "name": s["name"],
                    "tenant_id": s["project_id"], "memory_mb": f["ram"],
                    "local_gb": f["disk"] + f.get("ephemeral", 0), "vcpus": f["vcpus"],
                    "started_at": perfect(s["_launched_at"]),
                    "ended_at": perfect(s["_terminated_at"])}
            info["state"] = "terminated" if info["ended_at"] else s["vm_state"]
            end = s["_terminated_at"] if info["state"] == "terminated" else t_now
            info["uptime"] = int((end - s["_launched_at"]).total_seconds())
            if s["project_id"] not in rval:
                summary = {"tenant_id": s["project_id"]}
                if detailed:
                    summary["server_usages"] = []
                summary.update({"total_local_gb_usage": 0, "total_vcpus_usage": 0,
                                "total_memory_mb_usage": 0, "total_hours": 0,
                                "start": perfect(period_start), "stop": perfect(period_stop)})
                rval[s["project_id"]] = summary
            summary = rval[s["project_id"]]
            summary["total_local_gb_usage"] += info["local_gb"] * info["hours"]
            summary["total_vcpus_usage"] += info["vcpus"] * info["hours"]
            summary["total_memory_mb_usage"] += info["memory_mb"] * info["hours"]
            summary["total_hours"] += info["hours"]
            all_usages.append(info)
            if detailed:
                summary["server_usages"].append(info)
        usages = list(rval.values())
        if is_index:
            body = {"tenant_usages": usages}
            key, coll = "tenant_usages_links", "os-simple-tenant-usage"
        else:
            body = {"tenant_usage": usages[0] if usages else {}}
            key, coll = "tenant_usage_links", "os-simple-tenant-usage/" + tenant_id
        if links and all_usages and len(all_usages) == limit:
            link = self.next_link(coll, all_usages[-1]["instance_id"])
            body[key] = [link]
        return 200, body


def hours_for(s, period_start, period_stop):
    """SimpleTenantUsageController._hours_for, verbatim in effect."""
    launched_at, terminated_at = s["_launched_at"], s["_terminated_at"]
    if terminated_at and terminated_at < period_start:
        return 0
    if launched_at and launched_at > period_stop:
        return 0
    if launched_at:
        start = max(launched_at, period_start)
        stop = min(period_stop, terminated_at) if terminated_at else period_stop
        return (stop - start).total_seconds() / 3600.0
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--data", required=True)
    ap.add_argument("--faults")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="serve HTTPS with this PEM certificate (chain) and key")
    a = ap.parse_args()
    Handler.cloud = Cloud(a.data)
    Handler.faults = Faults(a.faults)
    Handler.tokens = Tokens()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    scheme = "http"
    if a.tls:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = context.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    Handler.scheme = scheme
    sys.stdout.write("ready url=%s://127.0.0.1:%d\n" % (scheme, srv.server_address[1]))
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
