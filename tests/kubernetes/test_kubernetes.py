#!/usr/bin/python3
"""test_kubernetes.py: the manifests in examples/kubernetes/ are valid Kubernetes objects and
configure a mailferry that `check-config` accepts, checked offline (no API server here).

    /usr/bin/python3 tests/kubernetes/test_kubernetes.py <path-to-mailferry>

1. validate.mjs checks every YAML document against the API schemas of the npm package
   kubernetes-models (types, required fields, enums, unknown fields, unknown kinds). Its
   node_modules come from `npm ci` on package-lock.json into a cache outside the checkout,
   $MAILFERRY_TEST_CACHE or /var/cache/mailferry-tests (else ~/.cache/mailferry-tests), in a
   directory named by the lock file's hash and made atomically: the first run needs the npm
   registry, later runs reuse it.
2. The StatefulSet's MAILFERRY_* variables (env, envFrom ConfigMaps and Secrets), with every path
   that points into a mounted Secret or ConfigMap replaced by a temp file holding that key's
   placeholder value, are given to `mailferry check-config` with no config file: exit 0, no
   warning, every variable marked, no secret printed.
3. What schemas cannot see: the pods' security context, probes on /readyz and /healthz at the
   metrics address, secrets only as files, Services and the PodDisruptionBudget selecting the
   pods, ports that lead where mailferry listens, the spool on a volume claim.

Exits 77 (meson: skipped) when node or npm is missing.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent.parent
sys.path.insert(0, str(SOURCE_ROOT / "tests" / "integration"))
import harness  # noqa: E402

MANIFESTS = sorted(glob.glob(str(SOURCE_ROOT / "examples" / "kubernetes" / "*.yaml")))
DEFAULT_CONFIG = "/etc/mailferry/mailferry.toml"
SPOOL = "/var/spool/mailferry"


# ---------------------------------------------------------------- node_modules, cached

def cache_base() -> Path:
    """Where cached node_modules live: outside the checkout, writable by whoever runs the test."""
    for candidate in (os.environ.get("MAILFERRY_TEST_CACHE"), "/var/cache/mailferry-tests",
                      os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                   os.path.expanduser("~/.cache"), "mailferry-tests")):
        if not candidate:
            continue
        try:
            os.makedirs(candidate, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    raise AssertionError("no writable cache directory for node_modules: set MAILFERRY_TEST_CACHE")


def node_modules() -> Path:
    """node_modules for package-lock.json: reused when the same lock was installed before, else
    `npm ci` in a private temp directory renamed into place once complete, so that a concurrent
    or interrupted run never sees half an install."""
    lock = (HERE / "package-lock.json").read_bytes()
    base = cache_base()
    final = base / f"npm-k8s-{hashlib.sha256(lock).hexdigest()[:16]}"
    if (final / "node_modules" / "kubernetes-models").is_dir():
        return final / "node_modules"
    # Leftovers of runs that were killed during npm ci.
    for old in base.glob(".npm-k8s-*.tmp-*"):
        pid = old.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=base))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, tmp / name)
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
                   npm_config_audit="false")
        try:
            r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                                "--loglevel=error"], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=420)
        except subprocess.TimeoutExpired:
            raise AssertionError("npm ci did not finish within 420 s (is the npm registry "
                                 "reachable?)") from None
        if r.returncode != 0:
            raise AssertionError(f"npm ci failed (exit {r.returncode}); the first run needs the "
                                 f"npm registry, later ones use {final}:\n"
                                 f"{r.stderr.decode(errors='replace')[-2000:]}")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "node_modules" / "kubernetes-models").is_dir():
                raise
            # Another run finished first: use its copy.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "node_modules"


def run_validate(modules: Path, files: list[str], json_out: str | None = None
                 ) -> subprocess.CompletedProcess:
    argv = ["node", str(HERE / "validate.mjs"), "--modules", str(modules)]
    if json_out:
        argv += ["--json", json_out]
    return subprocess.run(argv + files, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------- reading the manifests

def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"] == name]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} named {name!r} in the manifests, found {len(found)}")
    return found[0]


def secret_values(secret: dict) -> dict[str, bytes]:
    """A Secret's keys: data (base64) and stringData (which wins, as in the API server)."""
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    out.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return out


def configmap_values(cm: dict) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()}
    out.update({k: v.encode() for k, v in (cm.get("data") or {}).items()})
    return out


def source_values(docs: list[dict], kind: str, name: str) -> dict[str, bytes]:
    obj = named(docs, kind, name)
    return secret_values(obj) if kind == "Secret" else configmap_values(obj)


def container_env(docs: list[dict], container: dict) -> dict[str, tuple[str, str]]:
    """Every variable the container gets: name → (value, where it came from). envFrom first, then
    env, which wins, as in the kubelet."""
    out: dict[str, tuple[str, str]] = {}
    for ref in container.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in ref:
                name = ref[key]["name"]
                for k, v in source_values(docs, kind, name).items():
                    out[ref.get("prefix", "") + k] = (v.decode(), f"{kind} {name}")
    for e in container.get("env") or []:
        if "value" in e:
            out[e["name"]] = (e["value"], "env")
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                if key in vf:
                    ref = vf[key]
                    out[e["name"]] = (source_values(docs, kind, ref["name"])[ref["key"]].decode(),
                                      f"{kind} {ref['name']} key {ref['key']} (valueFrom)")
            if e["name"] not in out:
                raise AssertionError(f"{e['name']}: valueFrom that this test cannot resolve: {vf}")
        else:
            out[e["name"]] = ("", "env")
    return out


def mounted_files(docs: list[dict], pod: dict, container: dict) -> dict[str, tuple[bytes, str, int]]:
    """Every file that a Secret or ConfigMap volume puts in the container:
    path → (content, what, mode), the mode as the kubelet sets it (items' mode, else the volume's
    defaultMode, else 0644)."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    out: dict[str, tuple[bytes, str, int]] = {}
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m["name"])
        if v is None:
            continue   # a volume claim template (the spool)
        for kind, key, name_key in (("Secret", "secret", "secretName"),
                                    ("ConfigMap", "configMap", "name")):
            if key not in v:
                continue
            name = v[key][name_key]
            values = source_values(docs, kind, name)
            items = v[key].get("items")
            default_mode = v[key].get("defaultMode", 0o644)
            paths = ({i["key"]: (i["path"], i.get("mode", default_mode)) for i in items} if items
                     else {k: (k, default_mode) for k in values})
            for k, (rel, mode) in paths.items():
                entry = (values[k], f"{kind} {name} key {k}", mode)
                if "subPath" in m:
                    if rel == m["subPath"]:
                        out[m["mountPath"]] = entry
                else:
                    out[os.path.join(m["mountPath"], rel)] = entry
    return out


def port_number(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def address_port(address: str) -> int:
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:.]+\]|[^:\s]*):(\d+)", address.strip())
    if not m:
        raise AssertionError(f"{address!r} is not HOST:PORT")
    return int(m.group(1))


def matches(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        raise AssertionError("matchExpressions: not handled by this test")
    want = selector.get("matchLabels", selector)
    return bool(want) and all(labels.get(k) == v for k, v in want.items())


# ---------------------------------------------------------------- the tests

class KubernetesManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not MANIFESTS:
            raise AssertionError(f"no manifests in {SOURCE_ROOT / 'examples' / 'kubernetes'}")
        cls.dir = tempfile.mkdtemp(prefix="mailferry-k8s-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        cls.modules = node_modules()
        out = os.path.join(cls.dir, "manifests.json")
        cls.validation = run_validate(cls.modules, MANIFESTS, out)
        cls.parsed = json.loads(Path(out).read_text()) if os.path.exists(out) else []
        cls.docs = [p["object"] for p in cls.parsed]

    def statefulset(self) -> dict:
        sets = by_kind(self.docs, "StatefulSet")
        self.assertEqual(len(sets), 1, "expected one StatefulSet")
        return sets[0]

    def container(self) -> tuple[dict, dict]:
        pod = self.statefulset()["spec"]["template"]["spec"]
        found = [c for c in pod["containers"] if c["image"].split("/")[-1].startswith("mailferry:")]
        self.assertEqual(len(found), 1, "expected one container running the mailferry image")
        return pod, found[0]

    # -- 1. schemas

    def test_every_document_is_a_valid_kubernetes_object(self):
        r = self.validation
        self.assertEqual(r.returncode, 0, f"validate.mjs:\n{r.stdout}{r.stderr}")
        self.assertEqual(r.stderr, "")
        kinds = sorted(d["kind"] for d in self.docs)
        for kind in ("ConfigMap", "PodDisruptionBudget", "Secret", "Service", "StatefulSet"):
            self.assertIn(kind, kinds)
        self.assertRegex(r.stdout.splitlines()[-1], rf"^{len(self.docs)} passed, 0 failed$")

    def test_validator_rejects_what_kubernetes_would(self):
        # The validator itself: each mistake here must be reported, or a green run means nothing.
        bad = harness.write_file(os.path.join(self.dir, "bad.yaml"), "\n".join([
            "apiVersion: apps/v1", "kind: StatefulSet", "metadata: {name: x}", "spec:",
            "  serviceName: x", "  selector: {matchLabels: {a: b}}", "  template:",
            "    metadata: {labels: {a: b}}", "    spec:", "      containers:",
            "        - name: a", "          image: mailferry:latest",
            "          ports: [{containerPort: smtp}]",
            "          securityContext: {readOnlyRootFileSystem: true}",
            "---", "apiVersion: example.com/v1", "kind: Widget", "metadata: {name: w}",
            "---", "apiVersion: v1", "kind: Container", "metadata: {name: c}",
            "---", "apiVersion: v1", "kind: ConfigMap", "metadata: {name: m}", "data: {A: 1}",
            "---", "apiVersion: v1", "kind: Service", "metadata: {labels: {a: b}}", ""]))
        r = run_validate(self.modules, [bad])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for expected in ("containers[0].ports[0].containerPort must be integer",
                         "containers[0].securityContext.readOnlyRootFileSystem: unknown field",
                         "unknown kind example.com/v1/Widget",
                         "unknown kind v1/Container",
                         "data.A must be string",
                         "metadata.name is missing",
                         "0 passed, 5 failed"):
            self.assertIn(expected, r.stdout)

    # -- 2. check-config with exactly the manifests' variables

    def test_check_config_accepts_the_statefulsets_environment(self):
        if os.path.exists(DEFAULT_CONFIG):
            self.skipTest(f"{DEFAULT_CONFIG} exists here; the environment would not be the whole "
                          "configuration")
        pod, container = self.container()
        env = {k: v for k, v in container_env(self.docs, container).items()
               if k.startswith("MAILFERRY_")}
        self.assertIn("MAILFERRY_METRICS_ADDRESS", env)
        files = mounted_files(self.docs, pod, container)
        given: dict[str, str] = {}
        secrets: list[bytes] = []
        for name, (value, origin) in sorted(env.items()):
            if name.endswith("_FILE") or name == "MAILFERRY_CONFIG":
                self.assertIn(value, files, f"{name}={value} ({origin}) names no file that a "
                              f"Secret or ConfigMap volume mounts; mounted: {sorted(files)}")
                content, what, mode = files[value]
                local = os.path.join(self.dir, "mounted", value.lstrip("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                Path(local).write_bytes(content)
                os.chmod(local, mode)   # as the kubelet would: a key readable by all is a warning
                given[name] = local
                if what.startswith("Secret"):
                    secrets.append(content)
            else:
                given[name] = value
        # As the pod runs it, when this test may (root, and the binary reachable by the pod's
        # uid): the pod's uid and gid, fsGroup as supplementary group, and the mounted files
        # owned by root:fsGroup with group read added, as the kubelet leaves them. Otherwise as
        # this user, the files owned by its own group.
        sc = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup", sc.get("runAsUser"))
        fs_group = (pod.get("securityContext") or {}).get("fsGroup")

        def as_pod_user():
            os.setgroups([fs_group] if fs_group is not None else [])
            os.setgid(gid)
            os.setuid(uid)

        preexec = None
        if os.geteuid() == 0 and uid is not None:
            try:
                probe = subprocess.run([harness.MAILFERRY_BIN, "--version"], preexec_fn=as_pod_user,
                                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
                preexec = as_pod_user if probe.returncode == 0 else None
            except PermissionError:
                pass   # a directory on the way to the binary is closed to that uid
        group = fs_group if preexec is not None and fs_group is not None else os.getegid()
        for root, _, names in os.walk(os.path.join(self.dir, "mounted")):
            os.chmod(root, 0o755)
            for n in names:
                f = os.path.join(root, n)
                if os.geteuid() == 0:
                    os.chown(f, 0, group)
                os.chmod(f, os.stat(f).st_mode | (0o440 if fs_group is not None else 0))
        os.chmod(self.dir, 0o755)
        # A scrubbed environment: only these variables and what a shell would have.
        base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
        base["HOME"] = "/"
        p = subprocess.run([harness.MAILFERRY_BIN, "check-config"], env={**base, **given},
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                           preexec_fn=preexec)
        self.assertEqual(p.returncode, 0, f"check-config with {sorted(given)}:\n{p.stderr}")
        self.assertEqual(p.stderr, "", "check-config warned")
        self.assertIn("configuration from the environment", p.stdout.splitlines()[0])
        for name in given:
            self.assertIn(f"# from {name}", p.stdout, f"{name} not marked in check-config")
        for s in secrets:
            for line in s.decode(errors="replace").splitlines():
                if len(line.strip()) >= 8 and "BEGIN" not in line and "END" not in line:
                    self.assertNotIn(line.strip(), p.stdout, "a secret value was printed")

    # -- 3. what the schemas do not check

    def test_pod_runs_unprivileged(self):
        pod, container = self.container()
        psc, csc = pod.get("securityContext") or {}, container.get("securityContext") or {}
        merged = {**psc, **csc}   # the container's settings win over the pod's
        self.assertIs(merged.get("runAsNonRoot"), True)
        self.assertIsInstance(merged.get("runAsUser"), int, "runAsUser must be numeric")
        self.assertNotEqual(merged["runAsUser"], 0)
        self.assertIs(csc.get("readOnlyRootFilesystem"), True)
        self.assertIs(csc.get("allowPrivilegeEscalation"), False)
        self.assertEqual((csc.get("capabilities") or {}).get("drop"), ["ALL"])
        self.assertFalse((csc.get("capabilities") or {}).get("add"))
        self.assertEqual((merged.get("seccompProfile") or {}).get("type"), "RuntimeDefault")
        self.assertIs(pod.get("enableServiceLinks"), False,
                      "service links would add MAILFERRY_PORT and the like to the environment")
        self.assertIn("limits", container.get("resources") or {})
        self.assertIn("requests", container.get("resources") or {})

    def test_secrets_only_as_files(self):
        pod, container = self.container()
        for e in container.get("env") or []:
            self.assertNotIn("secretKeyRef", e.get("valueFrom") or {}, f"{e['name']} from a Secret "
                             "as a plain variable: mount it and use NAME_FILE")
        for ref in container.get("envFrom") or []:
            self.assertNotIn("secretRef", ref, "a Secret as environment variables")
        for name, (value, _) in container_env(self.docs, container).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|USERS", name) and not name.endswith("_FILE"):
                self.fail(f"{name} carries a secret in the environment: use {name}_FILE")
        env = container_env(self.docs, container)
        files = mounted_files(self.docs, pod, container)
        for name in ("MAILFERRY_UPSTREAM_PASSWORD_FILE", "MAILFERRY_USERS_FILE"):
            self.assertIn(name, env)
            self.assertTrue(files.get(env[name][0], (b"", "", 0))[1].startswith("Secret"),
                            f"{name} does not name a mounted Secret key")

    def test_probes_and_drain(self):
        pod, container = self.container()
        env = container_env(self.docs, container)
        metrics_port = address_port(env["MAILFERRY_METRICS_ADDRESS"][0])
        self.assertEqual(metrics_port, 9325)
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = (container.get(probe) or {}).get("httpGet")
            self.assertIsNotNone(get, f"no {probe} with httpGet")
            self.assertEqual(get["path"], path)
            self.assertEqual(port_number(container, get["port"]), metrics_port)
        # Sessions in flight get up to 10 s after SIGTERM, then deliveries under way finish.
        self.assertGreaterEqual(pod.get("terminationGracePeriodSeconds", 30), 30)

    def test_spool_on_its_own_volume_claim(self):
        sts = self.statefulset()
        _, container = self.container()
        claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates") or []}
        spool = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == SPOOL]
        self.assertEqual(len(spool), 1, f"nothing mounted at {SPOOL}")
        self.assertIn(spool[0]["name"], claims, "the spool is not a volume claim template")
        self.assertNotIn("MAILFERRY_SPOOL_DIR", container_env(self.docs, container),
                         "the image's spool volume is the default path")
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        self.assertEqual(policy.get("whenScaled", "Retain"), "Retain",
                         "a scaled-down replica's queue would be deleted")

    def test_services_and_budget_select_the_pods(self):
        sts = self.statefulset()
        pod, container = self.container()
        labels = sts["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(matches(sts["spec"]["selector"], labels))
        env = container_env(self.docs, container)
        listen_ports = {address_port(entry.split()[0])
                        for entry in env["MAILFERRY_LISTEN"][0].split(",")}
        services = by_kind(self.docs, "Service")
        headless = named(self.docs, "Service", sts["spec"]["serviceName"])
        self.assertEqual(headless["spec"].get("clusterIP"), "None")
        self.assertTrue(any(s["spec"].get("type", "ClusterIP") == "ClusterIP"
                            and s["spec"].get("clusterIP") != "None"
                            and any(p["port"] == 587 for p in s["spec"]["ports"]) for s in services),
                        "no ClusterIP Service on 587")
        for s in services:
            with self.subTest(service=s["metadata"]["name"]):
                self.assertTrue(matches(s["spec"]["selector"], labels))
                for p in s["spec"]["ports"]:
                    target = port_number(container, p.get("targetPort", p["port"]))
                    self.assertIn(target, listen_ports | {9325}, f"port {p['port']} leads nowhere")
        for pdb in by_kind(self.docs, "PodDisruptionBudget"):
            self.assertTrue(matches(pdb["spec"]["selector"], labels))
            self.assertLess(pdb["spec"].get("minAvailable", 0), sts["spec"].get("replicas", 1))
        namespaces = {d["metadata"].get("namespace") for d in self.docs if d["kind"] != "Namespace"}
        self.assertEqual(len(namespaces), 1, f"objects in several namespaces: {namespaces}")


def main() -> None:
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:
        print(f"SKIP: {' and '.join(missing)} not found (the manifests are validated with the npm "
              "packages kubernetes-models and yaml)", file=sys.stderr)
        sys.exit(77)
    harness.main()


if __name__ == "__main__":
    main()
