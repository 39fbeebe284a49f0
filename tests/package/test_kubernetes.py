#!/usr/bin/env python3
"""deploy/kubernetes/ against the config its ConfigMap carries: every listener's TCP port and UDP
door is a containerPort and a Service port (targetPort by name), the admin port is a containerPort
that the probes (/healthz liveness, /readyz readiness) use and the LoadBalancer Service does not
expose; listeners bind every address of the pod and the admin `allow` admits the kubelet; the
container's --config and every key file the config names are files of its one projected volume,
from the ConfigMap and the Secret; terminationGracePeriodSeconds is above limits.shutdown_grace
plus the log flush; non-root, read-only root filesystem, privilege escalation off, all
capabilities dropped and NET_BIND_SERVICE added exactly when a port is below 1024; resources set
and `workers` within the CPU limit; the Service keeps client addresses (externalTrafficPolicy:
Local); the PodDisruptionBudget selects the pods and lets one be evicted; the image tag is the
binary's version; kustomization.yaml lists every manifest but the Secret template. Then `edgerelay check` accepts the
ConfigMap's config with real key files (openssl), and refuses it with the Secret template's markers.

usage: test_kubernetes.py SOURCE_DIR EDGERELAY_BINARY"""

import glob
import ipaddress
import os
import posixpath
import re
import sys
import tempfile

try:
    import yaml
except ImportError:
    sys.exit("test_kubernetes: PyYAML is missing: run it with Debian's /usr/bin/python3 and python3-yaml "
             "(scripts/install-deps.sh test installs it)")

from package_check import check, finish, run
LOG_FLUSH_SECONDS = 2  # docs/config.md, log: the exit waits up to 2 s for queued lines




def duration_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(text))
    if not m:
        raise ValueError("bad duration %r" % text)
    n = int(m.group(1))
    return {"ms": n / 1000.0, "s": n, "m": n * 60}[m.group(2)]


def endpoint(text):
    m = re.fullmatch(r"\[?([^\]]+)\]?:(\d+)", text)
    return m.group(1), int(m.group(2))


def cpu_cores(text):
    text = str(text)
    return int(text[:-1]) / 1000.0 if text.endswith("m") else float(text)


def load_manifests(folder):
    objects = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    objects.setdefault(doc["kind"], []).append((os.path.basename(path), doc))
    return objects


def one(objects, kind):
    found = objects.get(kind, [])
    if len(found) != 1:
        sys.exit("test_kubernetes: expected one %s in deploy/kubernetes, found %d" % (kind, len(found)))
    return found[0][1]


def config_paths(config):
    """Every file path the config names (listener and backend TLS)."""
    paths = []
    for listener in config.get("listeners", []):
        tls = listener.get("tls") or {}
        paths += [tls[k] for k in ("cert", "key", "client_ca") if k in tls]
        paths += [p for c in tls.get("certs", []) for p in (c.get("cert"), c.get("key")) if p]
    for backend in config.get("backends", []):
        tls = backend.get("tls") or {}
        if tls.get("ca"):
            paths.append(tls["ca"])
    return paths


def check_ports(config, container, service):
    ports = {(p["containerPort"], p.get("protocol", "TCP")): p for p in container.get("ports", [])}
    by_name = {p["name"]: p for p in container.get("ports", []) if "name" in p}
    service_targets = set()
    for sp in service["spec"]["ports"]:
        target = sp.get("targetPort", sp["port"])
        cp = by_name.get(target) if isinstance(target, str) else ports.get((target, sp.get("protocol", "TCP")))
        check(cp is not None, "Service port %s targets %r, which is no containerPort" % (sp.get("name"), target))
        if cp is not None:
            check(cp.get("protocol", "TCP") == sp.get("protocol", "TCP"),
                  "Service port %s is %s, its containerPort %s" % (sp.get("name"), sp.get("protocol"), cp.get("protocol")))
            service_targets.add((cp["containerPort"], cp.get("protocol", "TCP")))
    wanted = []
    for listener in config["listeners"]:
        wanted.append((listener["name"], listener["bind"], "TCP"))
        if "udp_bind" in listener:
            wanted.append((listener["name"] + " udp_bind", listener["udp_bind"], "UDP"))
    for what, bind, protocol in wanted:
        host, port = endpoint(bind)
        check(ipaddress.ip_address(host).is_unspecified,
              "listener %s binds %s: inside a pod only 0.0.0.0 or [::] is reachable from the Service" % (what, bind))
        check((port, protocol) in ports, "listener %s (%s/%s) is no containerPort" % (what, bind, protocol))
        check((port, protocol) in service_targets, "listener %s (%s/%s) is not in the Service" % (what, bind, protocol))
    low = sorted(endpoint(bind)[1] for _, bind, _ in wanted if endpoint(bind)[1] < 1024)
    return ports, by_name, service_targets, low


def check_probes(config, container, ports, by_name, service_targets):
    admin = config.get("admin")
    if not check(admin and "bind" in admin, "the ConfigMap's config has no admin listener for the probes"):
        return None
    host, admin_port = endpoint(admin["bind"])
    check(ipaddress.ip_address(host).is_unspecified, "admin binds %s: the kubelet cannot reach it" % admin["bind"])
    allow = [ipaddress.ip_network(n, strict=False) for n in admin.get("allow", ["127.0.0.0/8", "::1/128"])]
    check(any(not n.is_loopback for n in allow), "admin allow %r is loopback only: every probe would be refused" % admin.get("allow"))
    check((admin_port, "TCP") in ports, "the admin port %d is no containerPort" % admin_port)
    check((admin_port, "TCP") not in service_targets, "the LoadBalancer Service exposes the admin port %d" % admin_port)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet")
        if not check(get is not None, "no %s httpGet" % probe):
            continue
        check(get.get("path") == path, "%s path %r, expected %s" % (probe, get.get("path"), path))
        port = get.get("port")
        resolved = by_name[port]["containerPort"] if isinstance(port, str) and port in by_name else port
        check(resolved == admin_port, "%s port %r is not the admin port %d" % (probe, port, admin_port))
    startup = (container.get("startupProbe") or {}).get("httpGet")
    if startup:
        port = startup.get("port")
        resolved = by_name[port]["containerPort"] if isinstance(port, str) and port in by_name else port
        check(resolved == admin_port and startup.get("path") == "/readyz", "startupProbe is not /readyz on the admin port")
    return admin_port


def check_files(config, container, pod, configmap, secret):
    """--config and every key file are files of the projected volume the container mounts."""
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    files = {}  # absolute path in the container -> (kind, object name, key)
    for volume in pod.get("volumes", []):
        mount = mounts.get(volume["name"])
        if mount is None:
            continue
        check(mount.get("readOnly") is True, "volume %s is mounted writable" % volume["name"])
        check("subPath" not in mount, "volume %s uses subPath: its files would never be updated" % volume["name"])
        sources = volume.get("projected", {}).get("sources", [])
        for kind in ("configMap", "secret"):
            if kind in volume:
                sources = sources + [{kind: dict(volume[kind], name=volume[kind].get("name", volume[kind].get("secretName")))}]
        for source in sources:
            for kind, ref in source.items():
                for item in ref.get("items", []):
                    files[posixpath.join(mount["mountPath"], item["path"])] = (kind, ref["name"], item["key"])
    args = container.get("args", [])
    check("--config" in args, "the container's args %r have no --config" % args)
    config_path = args[args.index("--config") + 1] if "--config" in args else ""
    source = files.get(config_path)
    check(source == ("configMap", configmap["metadata"]["name"], "edgerelay.yaml"),
          "--config %s is %r, not the ConfigMap's edgerelay.yaml" % (config_path, source))
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    used_secret_keys = set()
    for path in config_paths(config):
        absolute = posixpath.normpath(posixpath.join(posixpath.dirname(config_path), path))
        source = files.get(absolute)
        check(source is not None and source[0] == "secret" and source[1] == secret["metadata"]["name"],
              "the config names %s (%s in the pod), which the Secret does not project" % (path, absolute))
        if source:
            check(source[2] in secret_keys, "the volume projects Secret key %s, which the Secret lacks" % source[2])
            used_secret_keys.add(source[2])
    check(used_secret_keys == secret_keys, "Secret keys %s are not used by the config" % sorted(secret_keys - used_secret_keys))


def check_security(pod, container, low_ports):
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot is not set")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    check(isinstance(uid, int) and uid > 0, "runAsUser is %r" % uid)
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not set")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    caps = csc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], "capabilities drop %r, expected [ALL]" % caps.get("drop"))
    wanted_add = ["NET_BIND_SERVICE"] if low_ports else []
    check(sorted(caps.get("add", [])) == wanted_add,
          "capabilities add %r; ports below 1024: %r, so expected %r" % (caps.get("add"), low_ports, wanted_add))


def check_edgerelay_check(binary, config_text, config, secret):
    with tempfile.TemporaryDirectory(prefix="edgerelay-k8s-") as tmp:
        with open(os.path.join(tmp, "edgerelay.yaml"), "w") as f:
            f.write(config_text)
        tls = next(l["tls"] for l in config["listeners"] if "tls" in l)
        r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", os.path.join(tmp, tls["key"]), "-out", os.path.join(tmp, tls["cert"]),
                 "-days", "1", "-subj", "/CN=gateway"])
        check(r.returncode == 0, "openssl req: " + r.stdout)
        os.chmod(os.path.join(tmp, tls["key"]), 0o600)
        if "client_ca" in tls:
            r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", os.path.join(tmp, "ca.key"), "-out", os.path.join(tmp, tls["client_ca"]),
                     "-days", "1", "-subj", "/CN=clients-ca"])
            check(r.returncode == 0, "openssl req (CA): " + r.stdout)
        r = run([binary, "check", "--config", os.path.join(tmp, "edgerelay.yaml")])
        check(r.returncode == 0 and r.stdout.rstrip().endswith("OK"), "edgerelay check refuses the ConfigMap's config:\n" + r.stdout)
        print(r.stdout, end="", flush=True)
        # The Secret template as shipped: its markers must stop the gateway, never run it.
        for key, value in secret.get("stringData", {}).items():
            with open(os.path.join(tmp, key), "w") as f:
                f.write(value)
        r = run([binary, "check", "--config", os.path.join(tmp, "edgerelay.yaml")])
        check(r.returncode == 1 and tls["cert"] in r.stdout,
              "with secret.yaml's markers check exits %d instead of refusing %s:\n%s" % (r.returncode, tls["cert"], r.stdout))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    source_dir, binary = sys.argv[1:]
    folder = os.path.join(source_dir, "deploy", "kubernetes")
    objects = load_manifests(folder)
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    configmap, secret = one(objects, "ConfigMap"), one(objects, "Secret")
    pdb, kustomization = one(objects, "PodDisruptionBudget"), one(objects, "Kustomization")

    # Every manifest but the Secret template, whose markers must never replace real keys.
    manifests = {name for kind, docs in objects.items() if kind not in ("Kustomization", "Secret") for name, _ in docs}
    check(set(kustomization.get("resources", [])) == manifests,
          "kustomization.yaml lists %r, expected %r" % (kustomization.get("resources"), sorted(manifests)))

    config_text = configmap["data"]["edgerelay.yaml"]
    config = yaml.safe_load(config_text)
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    check(len(containers) == 1, "the pod has %d containers" % len(containers))
    container = containers[0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]

    ports, by_name, service_targets, low_ports = check_ports(config, container, service)
    admin_port = check_probes(config, container, ports, by_name, service_targets)
    check_files(config, container, pod, configmap, secret)
    check_security(pod, container, low_ports)

    grace = duration_seconds((config.get("limits") or {}).get("shutdown_grace", "10s"))
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(tgps > grace + LOG_FLUSH_SECONDS,
          "terminationGracePeriodSeconds %s is not above shutdown_grace %ss + %ss log flush" % (tgps, grace, LOG_FLUSH_SECONDS))

    resources = container.get("resources", {})
    check("requests" in resources and "limits" in resources, "resources need requests and limits: %r" % resources)
    cpu_limit = resources.get("limits", {}).get("cpu")
    workers = config.get("workers", "auto")
    check(cpu_limit is not None and workers != "auto" and int(workers) <= max(1, cpu_cores(cpu_limit)),
          "workers %r with CPU limit %r: `auto` counts the node's CPUs, set workers to the limit" % (workers, cpu_limit))
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        check(int(annotations["prometheus.io/port"]) == admin_port, "prometheus.io/port is not the admin port")

    check(service["spec"].get("externalTrafficPolicy") == "Local", "the Service's externalTrafficPolicy is not Local")
    check(service["spec"].get("type") == "LoadBalancer", "the Service is not a LoadBalancer")
    for what, selector in (("Service", service["spec"]["selector"]),
                           ("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]),
                           ("Deployment", deployment["spec"]["selector"]["matchLabels"])):
        check(all(labels.get(k) == v for k, v in selector.items()), "the %s selector %r misses the pods %r" % (what, selector, labels))
    replicas = deployment["spec"].get("replicas", 1)
    min_available = pdb["spec"].get("minAvailable")
    check(isinstance(min_available, int) and 1 <= min_available < replicas,
          "minAvailable %r with %d replicas: a drain could never evict a pod, or could evict them all" % (min_available, replicas))

    version = run([binary, "--version"]).stdout.split()[1]
    check(container["image"].rsplit(":", 1)[-1] == version, "image %s is not the version %s" % (container["image"], version))

    check_edgerelay_check(binary, config_text, config, secret)
    finish("test_kubernetes")


if __name__ == "__main__":
    main()
