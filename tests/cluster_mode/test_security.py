"""Security in the real cluster: container isolation, cross-tenant access over every API resource,
secrets kept out of logs and error messages, and login rate limits shared by both managers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.cluster_mode.conftest import batch, wait_all_terminal, wait_json
from tests.cluster_mode.harness import CLUSTER_SECRET, SECRET_KEY, STORAGE_TOKEN_SECRET, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.docker]

PASSWORD = "Tenant-pass-" + uuid.uuid4().hex[:10]

ESCAPE_SCRIPT = r"""
mount -t tmpfs none /mnt 2>/dev/null && echo ESCAPED:mount || echo DENIED:mount
for dev in /dev/vda /dev/sda /dev/nvme0n1 /dev/xvda; do
  mount "$dev" /mnt 2>/dev/null && echo "ESCAPED:hostdisk:$dev"
done; echo DENIED:hostdisk
for s in /var/run/docker.sock /run/docker.sock /run/berth-docker/docker.sock; do
  [ -e "$s" ] && echo "ESCAPED:socket:$s"
done; echo DENIED:socket
[ -e /proc/1/root/work/main ] && echo ESCAPED:hostroot || echo DENIED:hostroot
hits=$(find / -name "$MARKER" 2>/dev/null | head -n 1)
[ -n "$hits" ] && echo "ESCAPED:neighbour:$hits" || echo DENIED:neighbour
env | grep -v '^CLUSTER_SECRET_PROBE=' | grep -q "$CLUSTER_SECRET_PROBE" \
  && echo ESCAPED:env || echo DENIED:env
echo probe-finished
"""


async def test_a_container_cannot_escape(cluster: Cluster) -> None:
    marker = f"neighbour-marker-{uuid.uuid4().hex[:8]}"
    async with cluster.client(1) as api:
        neighbour = await api.post(
            "/api/v1/sessions", json=batch(f"touch /tmp/{marker}; echo ready; sleep 600")
        )
        assert neighbour.status_code == 201, neighbour.text
        nid = neighbour.json()["id"]
        await wait_json(
            api, f"/api/v1/sessions/{nid}", lambda s: s["status"] == "running", what="neighbour"
        )
        probe = await api.post(
            "/api/v1/sessions",
            json=batch(
                ESCAPE_SCRIPT,
                env={"MARKER": marker, "CLUSTER_SECRET_PROBE": CLUSTER_SECRET[:12]},
            ),
        )
        assert probe.status_code == 201, probe.text
        pid = probe.json()["id"]
        await wait_all_terminal(api, [pid])
        out = (await api.get(f"/api/v1/sessions/{pid}/logs")).text
        # A host path can never be asked for: mounts name folders, not paths.
        sneaky = await api.post(
            "/api/v1/sessions",
            json=batch("true", mounts=[{"folder": "../../../var/run", "path": "/host"}]),
        )
        await api.delete(f"/api/v1/sessions/{nid}")
        await wait_all_terminal(api, [nid])
    assert "probe-finished" in out, out
    assert "ESCAPED" not in out, out
    for check in ("mount", "hostdisk", "socket", "hostroot", "neighbour", "env"):
        assert f"DENIED:{check}" in out, out
    assert 400 <= sneaky.status_code < 500, sneaky.text
    assert set(sneaky.json()) >= {"code", "message", "request_id"}
    # What Docker was asked for: no privileges, no extra capabilities, no socket, no host paths.
    for i in range(1, cluster.agents + 1):
        for container in cluster.containers(i, all_states=True):
            host = container["HostConfig"]
            assert host["Privileged"] is False
            assert not host.get("CapAdd")
            assert host.get("NetworkMode") != "host"
            assert host.get("PidMode", "") != "host"
            for bind in host.get("Binds") or []:
                assert "docker.sock" not in bind and not bind.startswith("/:")


@dataclass
class Tenant:
    domain: str
    project: str
    user: str
    token: str


async def _tenant(admin: httpx.AsyncClient, tag: str) -> Tenant:
    suffix = uuid.uuid4().hex[:6]
    domain = await admin.post("/api/v1/domains", json={"name": f"dom-{tag}-{suffix}"})
    assert domain.status_code == 201, domain.text
    did = domain.json()["id"]
    project = await admin.post(
        "/api/v1/projects", json={"name": f"proj-{tag}-{suffix}", "domain_id": did}
    )
    assert project.status_code == 201, project.text
    user = await admin.post(
        "/api/v1/users",
        json={"username": f"user-{tag}-{suffix}", "password": PASSWORD, "domain_id": did},
    )
    assert user.status_code == 201, user.text
    uid, pid = user.json()["id"], project.json()["id"]
    groups = (await admin.get("/api/v1/resource-groups")).json()["items"]
    default = next(g for g in groups if g["name"] == "default")
    allowed = await admin.patch(
        f"/api/v1/resource-groups/{default['id']}",
        json={"project_ids": [*default["project_ids"], pid]},
    )
    assert allowed.status_code == 200, allowed.text
    member = await admin.put(f"/api/v1/projects/{pid}/members/{uid}", json={"role": "member"})
    assert member.status_code == 200, member.text
    token = await admin.post("/api/v1/tokens", json={"user_id": uid, "name": "matrix"})
    assert token.status_code == 201, token.text
    return Tenant(domain=did, project=pid, user=uid, token=token.json()["token"])


async def test_no_cross_tenant_read_or_write(cluster: Cluster) -> None:
    async with cluster.client(1) as admin:
        a, b = await _tenant(admin, "a"), await _tenant(admin, "b")
    async with cluster.client(1, token=a.token) as as_a:
        created = await as_a.post(
            "/api/v1/sessions",
            json=batch("echo tenant-a-output; sleep 600", project_id=a.project),
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        await wait_json(
            as_a, f"/api/v1/sessions/{sid}", lambda s: s["status"] == "running", what="A runs"
        )
        folder = await as_a.post("/api/v1/vfolders", json={"name": f"fa-{uuid.uuid4().hex[:6]}"})
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    session_paths = ["", "/logs", "/history", "/why", "/events"]
    # (method, path, body): every resource of tenant A that tenant B names directly.
    probes: list[tuple[str, str, Any]] = [
        *[("GET", f"/api/v1/sessions/{sid}{p}", None) for p in session_paths],
        ("DELETE", f"/api/v1/sessions/{sid}", None),
        ("GET", f"/api/v1/projects/{a.project}", None),
        ("GET", f"/api/v1/projects/{a.project}/members", None),
        ("PUT", f"/api/v1/projects/{a.project}/members/{b.user}", {"role": "member"}),
        ("GET", f"/api/v1/users/{a.user}", None),
        ("GET", f"/api/v1/domains/{a.domain}", None),
        ("GET", f"/api/v1/quotas/project/{a.project}", None),
        ("PUT", f"/api/v1/quotas/project/{a.project}", {"max_concurrent_sessions": 100}),
        ("POST", "/api/v1/sessions", batch("true", project_id=a.project)),
        ("GET", f"/apps/{sid}/shell/", None),
    ]
    assert folder.status_code == 201, folder.text
    fid = folder.json()["id"]
    probes += [
        ("GET", f"/api/v1/vfolders/{fid}", None),
        ("GET", f"/api/v1/vfolders/{fid}/files", None),
        ("POST", f"/api/v1/vfolders/{fid}/token", {"op": "download"}),
        ("PATCH", f"/api/v1/vfolders/{fid}", {"name": "stolen"}),
        ("DELETE", f"/api/v1/vfolders/{fid}", None),
    ]
    leaks: list[str] = []
    for m in (1, 2):
        async with cluster.client(m, token=b.token) as as_b:
            for method, path, body in probes:
                resp = await as_b.request(method, path, json=body)
                if resp.status_code not in (401, 403, 404):
                    leaks.append(f"m{m} {method} {path} -> {resp.status_code} {resp.text[:200]}")
                elif "tenant-a-output" in resp.text:
                    leaks.append(f"m{m} {method} {path} leaked output")
            listed = await as_b.get("/api/v1/sessions", params={"all": "true", "limit": 500})
            assert listed.status_code == 200
            assert sid not in {s["id"] for s in listed.json()["items"]}
            usage = await as_b.get("/api/v1/usage", params={"start": start})
            assert usage.status_code in (200, 403), usage.text
            if usage.status_code == 200:
                assert a.project not in {line["group_id"] for line in usage.json()["items"]}
    assert not leaks, "\n".join(leaks)
    # The same requests succeed for the owner, so the matrix above can fail.
    async with cluster.client(2, token=a.token) as as_a:
        for path in ("", "/logs", "/history"):
            resp = await as_a.get(f"/api/v1/sessions/{sid}{path}")
            assert resp.status_code == 200, (path, resp.text)
        assert "tenant-a-output" in (await as_a.get(f"/api/v1/sessions/{sid}/logs")).text
        assert (await as_a.get(f"/api/v1/vfolders/{fid}")).status_code == 200
        assert (await as_a.delete(f"/api/v1/sessions/{sid}")).status_code == 200
        await wait_all_terminal(as_a, [sid])


async def test_login_is_rate_limited_across_managers(cluster: Cluster) -> None:
    async with cluster.client(1) as admin:
        tenant = await _tenant(admin, "rl")
        username = (await admin.get(f"/api/v1/users/{tenant.user}")).json()["username"]
    statuses: list[int] = []
    bodies: list[dict[str, Any]] = []
    for attempt in range(20):  # alternating managers: 10 each if they did not share buckets
        async with cluster.client(1 + attempt % 2, token="") as anon:
            resp = await anon.post(
                "/api/v1/auth/login", json={"username": username, "password": "wrong-" + PASSWORD}
            )
        statuses.append(resp.status_code)
        bodies.append(resp.json())
        if statuses[-2:] == [429, 429]:
            break
    assert statuses[:10] == [401] * 10, statuses
    # The bucket refills one attempt per 6 s, so a slow run may see an extra 401 or two, but
    # per-manager buckets would allow 20 alternating attempts before the first refusal.
    assert statuses[-2:] == [429, 429] and len(statuses) < 20, statuses
    limited = bodies[-1]
    assert limited["code"] == "rate_limited" and limited["details"]["retry_after_s"] > 0
    for body in bodies:
        assert PASSWORD not in str(body)
    # Another user from the same address is not affected.
    async with cluster.client(2, token="") as anon:
        other = await anon.post("/api/v1/auth/login", json={"username": "admin", "password": "x"})
    assert other.status_code == 401, other.text


async def test_errors_never_echo_secrets(cluster: Cluster) -> None:
    async with cluster.client(1, token="") as anon:
        wrong = "wrong-" + CLUSTER_SECRET
        beat = await anon.post(
            "/api/v1/internal/agents/heartbeat",
            json={},
            headers={"X-Berth-Cluster-Secret": wrong},
        )
        forged = cluster.token[:-4] + "AAAA"
        bad_token = await anon.get(
            "/api/v1/sessions", headers={"Authorization": f"Bearer {forged}"}
        )
    assert beat.status_code == 401 and wrong not in beat.text
    assert bad_token.status_code == 401 and forged not in bad_token.text
    assert cluster.token.split(".")[-1] not in bad_token.text


def test_secrets_never_reach_the_logs(cluster: Cluster) -> None:
    """Runs after the other tests of the package generated plenty of log lines."""
    secrets = {
        "cluster secret": CLUSTER_SECRET,
        "secret key": SECRET_KEY,
        "admin token secret": cluster.token.split(".")[-1],
        "user password": PASSWORD,
        "storage token secret": STORAGE_TOKEN_SECRET,
    }
    logs = {name: proc.log(tail=10**8) for name, proc in cluster.procs.items()}
    assert any("request" in text for text in logs.values()), "the logs were read"
    found = [
        f"{what} in {name}.log"
        for name, text in logs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert not found, found
