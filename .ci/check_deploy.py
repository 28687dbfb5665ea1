#!/usr/bin/env python3
"""Consistency check of the deployment and observability files against the Rust workspace.

    python3 .ci/check_deploy.py [--root DIR]

Checks compose.yaml, Dockerfile, .dockerignore, dashboards/prometheus.yml, the alerting rules
(dashboards/prometheus/alerts.yml; `promtool check rules` too when promtool is installed), the
Grafana provisioning and dashboards under dashboards/grafana, and the Kubernetes example under
deploy/kubernetes against each other and against the workspace: binary names come from the Cargo.toml files, env var and flag names from the
`#[arg(long, env = "...")]` attributes and `env::var("...")` calls, HTTP routes from
`.route("...")` calls, metric names from the `metrics::counter!/gauge!/
histogram!` calls. So renaming a binary, a flag or a metric in Rust breaks this check until
the deployment files follow.

Prints one `ok` line per check passed and a `FAIL` block per check failed; exits 1 if any
check failed. Needs Python 3.11+ (tomllib) and PyYAML. Runs nothing and needs no Docker.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import yaml

# -------------------------------------------------------------------------------- policy

# compose.yaml must define exactly these services.
SERVICES = {"redis", "scheduler-1", "scheduler-2", "worker", "prometheus", "grafana"}

# Rust sources scanned for env names and metric names (relative to the root).
RUST_SRC_DIRS = ("shared/src", "scheduler/src", "worker/src")

# Env vars a binary may be given before its Rust code reads them ("coming soon").
ALLOWED_SOON_ENV = {
    "dotjob-scheduler": {"DOTJOB_ADMIN_TOKEN", "DOTJOB_READ_TOKEN", "DOTJOB_SCHEDULER_LEASE_MS"},
}
# Always accepted (REDIS_URL is the documented way in, whatever the sources say).
ALWAYS_ENV = {"REDIS_URL"}

# Where each binary serves HTTP (admin API or /metrics): env var, flag, default.
LISTEN = {
    "dotjob-scheduler": ("DOTJOB_LISTEN", "--listen", "127.0.0.1:8080"),
    "dotjob-worker": ("DOTJOB_METRICS_LISTEN", "--metrics-listen", None),
}
# Scheduler env that compose must pin (Redis is a service; jobs run on the worker service).
SCHEDULER_PINNED_ENV = {"DOTJOB_START_REDIS": "never", "DOTJOB_EMBEDDED_WORKER": "off"}
# Flags a binary cannot start without (clap `required`), each with its env alternative.
REQUIRED_ARGS = {"dotjob-worker": [("--group", "DOTJOB_GROUP")]}

# Ports the third-party images listen on, by image name without tag.
IMAGE_PORTS = {"redis": {6379}, "prom/prometheus": {9090}, "grafana/grafana": {3000}}
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"

# Where compose mounts the alerting rules, and the rule file in the repo.
ALERT_RULES = "dashboards/prometheus/alerts.yml"
# The alerts issue 15 asks for (names in alerts.yml).
REQUIRED_ALERTS = {"DotjobNoLiveExecutor", "DotjobStartLagHigh", "DotjobDeadLettersRising", "DotjobGroupWithoutLeaseHolder"}
# Built services' healthchecks must ask this route (ready = Redis answers).
HEALTHCHECK_ROUTE = "/readyz"

# Kubernetes example: the folder, the kinds it may use (apiVersion per kind), and the
# replicas the issue asks for per binary.
K8S_DIR = "deploy/kubernetes"
K8S_KINDS = {
    "Deployment": "apps/v1", "Service": "v1", "Secret": "v1", "ConfigMap": "v1",
    "ServiceMonitor": "monitoring.coreos.com/v1", "PodMonitor": "monitoring.coreos.com/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
K8S_REPLICAS = {"dotjob-scheduler": 2}
K8S_PROBES = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}

# Datasource uids Grafana defines itself.
GRAFANA_BUILTIN_DS = {"-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# -------------------------------------------------------------------------------- helpers

class Problems(Exception):
    """A failed check: one or more human-readable problems."""

    def __init__(self, *problems: str):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)


def load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise Problems(f"{path.name}: file not found") from None
    except yaml.YAMLError as e:
        raise Problems(f"{path.name}: not valid YAML: {e}") from None


_INTERP = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interp(value):
    """Compose-style `${VAR:-default}` interpolation with an empty environment."""
    if not isinstance(value, str):
        return value
    value = value.replace("$$", "\0")
    value = _INTERP.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)
    return value.replace("\0", "$")


def image_tag_problem(ref: str) -> str | None:
    """Why an image reference is not pinned to an explicit tag, or None."""
    if "$" in ref:
        return f"`{ref}` is not a literal image reference"
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"`{ref}` has no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"`{ref}` uses the floating :latest tag"
    return None


def image_name(ref: str) -> str:
    """`prom/prometheus:v2.53.0` -> `prom/prometheus`; drops a docker.io/library prefix."""
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    name = (head + "/" if head else "") + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def split_hostport(s: str) -> tuple[str, int | None]:
    s = s.strip()
    m = re.fullmatch(r"\[([^\]]*)\]:(\d+)", s) or re.fullmatch(r"([^:]*):(\d+)", s)
    if not m:
        return s, None
    return m.group(1), int(m.group(2))


# -------------------------------------------------------------------------------- workspace

class Workspace:
    """What the Rust workspace defines: packages, binaries, flags/env per binary, metrics."""

    def __init__(self, root: Path):
        self.root = root
        top = tomllib.loads((root / "Cargo.toml").read_text())
        ws = top.get("workspace", {})
        self.rust_version = ws.get("package", {}).get("rust-version")
        self.members = list(ws.get("members", []))
        self.packages: dict[str, dict] = {}  # package name -> {dir, deps, bins}
        for member in self.members:
            mdir = root / member
            manifest = tomllib.loads((mdir / "Cargo.toml").read_text())
            pkg = manifest["package"]["name"]
            # Binaries as cargo sees them: the [[bin]] tables, plus the inferred ones
            # (src/main.rs, src/bin/*) whose file no [[bin]] table already claims.
            bins, claimed = set(), set()
            for b in manifest.get("bin", []):
                if "name" in b:
                    bins.add(b["name"])
                    default = "src/main.rs" if b["name"] == pkg else f"src/bin/{b['name']}.rs"
                    claimed.add((mdir / b.get("path", default)).resolve())
            if manifest["package"].get("autobins", True):
                inferred = [(pkg, mdir / "src/main.rs")]
                inferred += [(f.stem, f) for f in (mdir / "src/bin").glob("*.rs")]
                inferred += [(f.parent.name, f) for f in (mdir / "src/bin").glob("*/main.rs")]
                bins |= {n for n, f in inferred if f.is_file() and f.resolve() not in claimed}
            self.packages[pkg] = {"dir": mdir, "deps": set(manifest.get("dependencies", {})), "bins": bins}
        self.binaries = {b: pkg for pkg, info in self.packages.items() for b in info["bins"]}
        self._scan_sources()

    def _rust_files(self, d: Path, skip_bin: bool = False) -> list[Path]:
        files = sorted(d.rglob("*.rs")) if d.is_dir() else []
        if skip_bin:
            files = [f for f in files if "bin" not in f.relative_to(d).parts[:1]]
        return files

    def _scan_sources(self) -> None:
        self.metrics: dict[str, str] = {}  # name -> counter/gauge/histogram/"?"
        for d in RUST_SRC_DIRS:
            for f in self._rust_files(self.root / d):
                text = f.read_text()
                for kind, name in re.findall(r"\b(counter|gauge|histogram)!\(\s*\"(dotjob_[a-z_]+)\"", text):
                    self.metrics[name] = kind
                for name in re.findall(r"\"(dotjob_[a-z_]+)\"", text):
                    self.metrics.setdefault(name, "?")

    def binary_files(self, binary: str) -> list[Path]:
        """A binary's Rust sources: its package's plus the libraries of the workspace
        packages it depends on (transitively), limited to RUST_SRC_DIRS."""
        pkg = self.binaries[binary]
        seen, todo, files = set(), [pkg], []
        while todo:
            p = todo.pop()
            if p in seen or p not in self.packages:
                continue
            seen.add(p)
            src = self.packages[p]["dir"] / "src"
            if rel(self.root, src) in RUST_SRC_DIRS:
                files += self._rust_files(src, skip_bin=(p != pkg))
            todo += [d for d in self.packages[p]["deps"] if d in self.packages]
        return files

    def binary_routes(self, binary: str) -> set[str]:
        """HTTP paths a binary serves: the `.route("/...")` calls in its sources."""
        routes = set()
        for f in self.binary_files(binary):
            text = f.read_text().split("#[cfg(test)]", 1)[0]  # not the unit tests' servers
            routes |= set(re.findall(r"\.route\(\s*\"(/[^\"]*)\"", text))
        return routes

    def binary_args(self, binary: str) -> tuple[set[str], set[str]]:
        """(env names, long flags) a binary reads (clap `env =`/`long` attributes and
        `env::var("...")` calls in [`binary_files`])."""
        files = self.binary_files(binary)
        envs, flags = set(), {"--help", "--version", "-h", "-V"}
        for f in files:
            text = f.read_text()
            envs |= set(re.findall(r"\benv\s*=\s*\"([A-Za-z_][A-Za-z0-9_]*)\"", text))
            envs |= {e for e in re.findall(r"\benv::var(?:_os)?\(\s*\"([A-Z][A-Z0-9_]*)\"", text) if not e.startswith("DOTJOB_TEST_")}
            for attr, field in re.findall(
                r"#\[arg\(((?:[^()]|\([^()]*\))*)\)\]\s*(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:", text
            ):
                m = re.search(r"\blong\s*=\s*\"([^\"]+)\"", attr)
                if m:
                    flags.add("--" + m.group(1))
                elif re.search(r"\blong\b", attr):
                    flags.add("--" + field.replace("_", "-"))
            if "from_default_env" in text:
                envs.add("RUST_LOG")  # tracing_subscriber::EnvFilter reads RUST_LOG
        return envs, flags


# -------------------------------------------------------------------------------- compose model

class Service:
    def __init__(self, name: str, spec: dict):
        self.name = name
        self.spec = spec if isinstance(spec, dict) else {}

    @property
    def built(self) -> bool:
        return "build" in self.spec

    @property
    def image(self) -> str | None:
        img = self.spec.get("image")
        return interp(img) if isinstance(img, str) else None

    def build_dirs(self, root: Path) -> tuple[Path, Path]:
        b = self.spec["build"]
        ctx, dockerfile = (b, "Dockerfile") if isinstance(b, str) else (b.get("context", "."), b.get("dockerfile", "Dockerfile"))
        ctx_path = (root / interp(ctx)).resolve()
        return ctx_path, (ctx_path / interp(dockerfile)).resolve()

    def env(self, root: Path) -> dict[str, object]:
        env: dict[str, object] = {}
        ef = self.spec.get("env_file") or []
        for entry in [ef] if isinstance(ef, (str, dict)) else ef:
            path = root / (entry if isinstance(entry, str) else entry.get("path", ""))
            if path.is_file():
                for line in path.read_text().splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        k, _, v = line.partition("=")
                        env[k.strip()] = v
        e = self.spec.get("environment") or {}
        if isinstance(e, dict):
            env.update(e)
        else:
            for item in e:
                k, sep, v = str(item).partition("=")
                env[k] = v if sep else None
        return env

    def argv(self, dockerfile_cmd: list[str] | None) -> list[str]:
        def as_list(v):
            if v is None:
                return None
            return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]

        entry, cmd = as_list(self.spec.get("entrypoint")), as_list(self.spec.get("command"))
        if cmd is None:
            cmd = dockerfile_cmd or []
        return (entry or []) + cmd

    def mounts(self) -> list[tuple[str, str | None, str]]:
        """(kind, source, target) for each entry of `volumes`; kind is bind/volume/other."""
        out = []
        for v in self.spec.get("volumes") or []:
            if isinstance(v, str):
                parts = interp(v).split(":")
                if len(parts) == 1:
                    out.append(("volume", None, parts[0]))
                    continue
                src, target = parts[0], parts[1]
                kind = "bind" if src.startswith((".", "/", "~")) else "volume"
                out.append((kind, src, target))
            elif isinstance(v, dict):
                out.append((v.get("type", "volume"), interp(v.get("source")), interp(v.get("target", ""))))
        return out

    def replicas(self) -> int:
        return int((self.spec.get("deploy") or {}).get("replicas", 1) or 1)


def binary_of(argv: list[str]) -> str | None:
    return PurePosixPath(argv[0]).name if argv else None


def arg_value(argv: list[str], flag: str) -> str | None:
    for i, tok in enumerate(argv):
        if tok == flag and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith(flag + "="):
            return tok.split("=", 1)[1]
    return None


# -------------------------------------------------------------------------------- Dockerfile model

class Dockerfile:
    def __init__(self, path: Path):
        self.path = path
        self.instructions: list[tuple[int, str, str]] = []  # (stage index, KEYWORD, rest)
        self.stages: list[dict] = []  # {image, name}
        lines, buf = [], ""
        for raw in path.read_text().splitlines():
            if raw.strip().startswith("#"):
                continue  # comments (also inside a continuation) and parser directives
            if raw.rstrip().endswith("\\"):
                buf += raw.rstrip()[:-1] + " "
                continue
            lines.append(buf + raw)
            buf = ""
        if buf.strip():
            lines.append(buf)
        for line in lines:
            if not line.strip():
                continue
            kw, _, rest = line.strip().partition(" ")
            kw = kw.upper()
            if kw == "FROM":
                toks = rest.split()
                toks = [t for t in toks if not t.startswith("--platform")]
                name = toks[2] if len(toks) >= 3 and toks[1].lower() == "as" else None
                self.stages.append({"image": toks[0] if toks else "", "name": name})
            self.instructions.append((len(self.stages) - 1, kw, rest.strip()))

    def of(self, kw: str, stage: int | None = None):
        return [(s, r) for s, k, r in self.instructions if k == kw and (stage is None or s == stage)]

    def cmd(self) -> list[str] | None:
        cmds = self.of("CMD", len(self.stages) - 1)
        if not cmds:
            return None
        rest = cmds[-1][1]
        try:
            return [str(x) for x in json.loads(rest)]
        except json.JSONDecodeError:
            return shlex.split(rest)

    @staticmethod
    def shell_commands(run: str) -> list[list[str]]:
        """Simple commands of a RUN line (options like --mount dropped), split at && ; | ||."""
        lex = shlex.shlex(run, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        cmds, cur = [], []
        for tok in lex:
            if tok in ("&&", ";", "||", "|", "&"):
                cmds.append(cur)
                cur = []
            elif not (not cur and tok.startswith("--")):  # RUN --mount=... options
                cur.append(tok)
        cmds.append(cur)
        return [c for c in cmds if c]

    def cargo_builds(self) -> list[tuple[int, list[str]]]:
        out = []
        for stage, run in self.of("RUN"):
            for cmd in self.shell_commands(run):
                if cmd[0] == "cargo" and "build" in cmd[1:3]:
                    out.append((stage, cmd))
        return out

    def copies(self) -> list[tuple[int, dict, list[str], str]]:
        """(stage, options, sources, dest) for each COPY/ADD."""
        out = []
        for kw in ("COPY", "ADD"):
            for stage, rest in self.of(kw):
                toks = shlex.split(rest) if not rest.startswith("[") else json.loads(rest)
                opts = {}
                while toks and toks[0].startswith("--"):
                    k, _, v = toks.pop(0)[2:].partition("=")
                    opts[k] = v
                if len(toks) >= 2:
                    out.append((stage, opts, toks[:-1], toks[-1]))
        return sorted(out, key=lambda c: c[0])


def cargo_targets(cmd: list[str], ws: Workspace) -> tuple[set[str], set[str], list[str]]:
    """(packages, binaries, problems) of a `cargo build ...` command."""
    pkgs, bins, problems = set(), set(), []
    it = iter(range(len(cmd)))
    for i in it:
        tok = cmd[i]
        for flag, into in (("-p", pkgs), ("--package", pkgs), ("--bin", bins)):
            if tok == flag and i + 1 < len(cmd):
                into.add(cmd[i + 1])
                next(it, None)
            elif tok.startswith(flag + "=") or (flag == "-p" and tok.startswith("-p") and len(tok) > 2 and not tok.startswith("--")):
                into.add(tok.split("=", 1)[1] if "=" in tok else tok[2:])
        if tok in ("--workspace", "--all"):
            pkgs |= set(ws.packages)
    for p in sorted(pkgs - set(ws.packages)):
        problems.append(f"`cargo build -p {p}`: no workspace package named {p}")
    if not pkgs and not bins:
        problems.append("`cargo build` names no package (-p); it would build only the default members")
    built = bins or {b for p in pkgs if p in ws.packages for b in ws.packages[p]["bins"]}
    return pkgs, built, problems


# -------------------------------------------------------------------------------- the checks

class Checker:
    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, object] = {}

    # Lazily loaded inputs; a failure to load fails every check that needs it.
    def _get(self, key, load):
        if key not in self._cache:
            try:
                self._cache[key] = load()
            except Problems as e:
                self._cache[key] = e
            except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as e:
                self._cache[key] = Problems(f"{key}: cannot load: {e}")
        v = self._cache[key]
        if isinstance(v, Problems):
            raise Problems(f"depends on {key}, which did not load: {v}")
        return v

    @property
    def ws(self) -> Workspace:
        return self._get("the Cargo workspace", lambda: Workspace(self.root))

    @property
    def compose(self) -> dict:
        def load():
            doc = load_yaml(self.root / "compose.yaml")
            if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
                raise Problems("compose.yaml: no `services` mapping")
            return doc
        return self._get("compose.yaml", load)

    @property
    def services(self) -> dict[str, Service]:
        return {n: Service(n, s) for n, s in self.compose["services"].items()}

    def dockerfile_for(self, svc: Service) -> Dockerfile:
        _, path = svc.build_dirs(self.root)
        return self._get(rel(self.root, path), lambda: Dockerfile(path))

    def built(self) -> list[tuple[Service, list[str], str | None]]:
        """(service, argv, binary) for the services built from the repo."""
        out = []
        for svc in self.services.values():
            if svc.built:
                argv = svc.argv(self.dockerfile_for(svc).cmd())
                out.append((svc, argv, binary_of(argv)))
        return out

    def listen_ports(self, svc: Service) -> set[int]:
        """Ports a service listens on, for its own binary or image."""
        if svc.built:
            argv = svc.argv(self.dockerfile_for(svc).cmd())
            spec = LISTEN.get(binary_of(argv))
            if not spec:
                return set()
            env_name, flag, default = spec
            addr = arg_value(argv, flag) or interp(svc.env(self.root).get(env_name)) or default
            return {split_hostport(addr)[1]} if addr else set()
        img = svc.image or ""
        ports = set(IMAGE_PORTS.get(image_name(img), set()))
        if image_name(img) == "prom/prometheus":
            addr = arg_value(svc.argv(None), "--web.listen-address")
            if addr:
                ports = {split_hostport(addr)[1]}
        return ports

    def host_path(self, svc: Service, container_path: str) -> Path | None:
        """The repo path behind a container path, through the service's bind mounts."""
        best = None
        for kind, src, target in svc.mounts():
            t = target.rstrip("/") or "/"
            if kind == "bind" and src and (container_path == t or container_path.startswith(t + "/")):
                if best is None or len(t) > len(best[1]):
                    best = (src, t)
        if best is None:
            return None
        return (self.root / best[0] / container_path[len(best[1]):].lstrip("/")).resolve()

    def find_service(self, image: str) -> Service:
        for svc in self.services.values():
            if svc.image and image_name(svc.image) == image:
                return svc
        raise Problems(f"compose.yaml: no service runs the {image} image")

    # ---- compose.yaml

    def check_compose_services(self):
        """compose.yaml parses, has exactly the expected services and no `version` key"""
        doc, problems = self.compose, []
        if "version" in doc:
            problems.append("compose.yaml: remove the obsolete top-level `version` key (Compose spec)")
        names = set(doc["services"])
        if names - SERVICES:
            problems.append(f"compose.yaml: unexpected services {sorted(names - SERVICES)}")
        if SERVICES - names:
            problems.append(f"compose.yaml: missing services {sorted(SERVICES - names)}")
        for key in doc:
            if key not in ("name", "services", "volumes", "networks", "configs", "secrets", "include") and not key.startswith("x-"):
                problems.append(f"compose.yaml: unknown top-level key `{key}`")
        if problems:
            raise Problems(*problems)
        return f"{len(names)} services: {', '.join(sorted(names))}"

    def check_compose_images(self):
        """every image: in compose.yaml has an explicit tag (not latest)"""
        problems, n = [], 0
        for svc in self.services.values():
            if svc.image is None:
                if not svc.built:
                    problems.append(f"service {svc.name}: neither image nor build")
                continue
            n += 1
            why = image_tag_problem(svc.image)
            if why:
                problems.append(f"service {svc.name}: image {why}")
        if problems:
            raise Problems(*problems)
        return f"{n} images pinned"

    def check_compose_builds(self):
        """every build: in compose.yaml points at a directory with a Dockerfile"""
        problems, seen = [], set()
        for svc in self.services.values():
            if not svc.built:
                continue
            ctx, dockerfile = svc.build_dirs(self.root)
            if not ctx.is_dir():
                problems.append(f"service {svc.name}: build context {rel(self.root, ctx)} is not a directory")
            elif not dockerfile.is_file():
                problems.append(f"service {svc.name}: no {rel(self.root, dockerfile)} in build context {rel(self.root, ctx)}")
            seen.add(rel(self.root, dockerfile))
        if not seen and not problems:
            problems.append("compose.yaml: no service is built from the repo")
        if problems:
            raise Problems(*problems)
        return f"built from {', '.join(sorted(seen))}"

    def check_compose_mounts(self):
        """bind-mounted host paths exist in the repo; named volumes are declared"""
        problems, n = [], 0
        declared = set((self.compose.get("volumes") or {}))
        for svc in self.services.values():
            for kind, src, target in svc.mounts():
                if kind == "bind":
                    n += 1
                    path = (self.root / src).resolve()
                    if src.startswith(("/", "~")) or not path.is_relative_to(self.root.resolve()):
                        problems.append(f"service {svc.name}: bind mount {src} is outside the repo")
                    elif not path.exists():
                        problems.append(f"service {svc.name}: bind mount source {src} does not exist")
                elif kind == "volume" and src and src not in declared:
                    problems.append(f"service {svc.name}: named volume `{src}` is not declared under top-level volumes")
        if problems:
            raise Problems(*problems)
        return f"{n} bind mounts exist"

    def check_compose_dependencies(self):
        """depends_on names services; service_healthy targets have a healthcheck; replicas publish no fixed host port"""
        problems = []
        services = self.services
        for svc in services.values():
            deps = svc.spec.get("depends_on") or {}
            deps = {d: {} for d in deps} if isinstance(deps, list) else deps
            for dep, cond in deps.items():
                if dep not in services:
                    problems.append(f"service {svc.name}: depends_on unknown service {dep}")
                elif (cond or {}).get("condition") == "service_healthy" and (
                    not (hc := services[dep].spec.get("healthcheck")) or hc.get("disable")
                ):
                    problems.append(f"service {svc.name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            if svc.replicas() > 1:
                for p in svc.spec.get("ports") or []:
                    fixed = p.get("published") if isinstance(p, dict) else ":" in str(p)
                    if fixed:
                        problems.append(f"service {svc.name}: {svc.replicas()} replicas cannot share published host port {p}")
        if problems:
            raise Problems(*problems)
        return "ok"

    def check_compose_commands(self):
        """commands of built services name workspace binaries (from the Cargo.toml files), with known flags"""
        problems, used = [], {}
        for svc, argv, binary in self.built():
            if binary not in self.ws.binaries:
                known = ", ".join(sorted(self.ws.binaries))
                problems.append(f"service {svc.name}: command `{' '.join(argv)}` runs {binary!r}, not a workspace binary ({known})")
                continue
            used.setdefault(binary, []).append(svc.name)
            envs, flags = self.ws.binary_args(binary)
            for tok in argv[1:]:
                if tok.startswith("-") and tok.split("=", 1)[0] not in flags:
                    problems.append(f"service {svc.name}: {binary} has no flag {tok.split('=', 1)[0]}")
            env = svc.env(self.root)
            for flag, env_name in REQUIRED_ARGS.get(binary, []):
                if arg_value(argv, flag) is None and not interp(env.get(env_name)):
                    problems.append(f"service {svc.name}: {binary} needs {flag} or {env_name}")
        if problems:
            raise Problems(*problems)
        return "; ".join(f"{b} ({', '.join(s)})" for b, s in sorted(used.items()))

    def check_compose_env(self):
        """env vars of built services are read by their binary (env = "..." in the Rust sources)"""
        problems, n = [], 0
        services = self.services
        for svc in services.values():  # all services: Compose booleans must be quoted
            for k, v in svc.env(self.root).items():
                if isinstance(v, bool):
                    problems.append(f"service {svc.name}: {k} is a YAML boolean; quote it (\"{str(v).lower()}\"?)")
        for svc, argv, binary in self.built():
            if binary not in self.ws.binaries:
                continue  # reported by the commands check
            known = self.ws.binary_args(binary)[0] | ALWAYS_ENV | ALLOWED_SOON_ENV.get(binary, set())
            env = svc.env(self.root)
            for k, v in env.items():
                n += 1
                if k not in known:
                    problems.append(f"service {svc.name}: {binary} does not read {k} (known: {', '.join(sorted(known))})")
            url = interp(env.get("REDIS_URL")) or ""
            m = re.fullmatch(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/.*)?", url)
            if not m:
                problems.append(f"service {svc.name}: REDIS_URL `{url}` is not a redis:// URL of a compose service")
            elif m.group(1) not in services:
                problems.append(f"service {svc.name}: REDIS_URL host {m.group(1)} is not a compose service")
            elif int(m.group(2) or 6379) not in self.listen_ports(services[m.group(1)]):
                problems.append(f"service {svc.name}: REDIS_URL port {m.group(2) or 6379} is not a port {m.group(1)} listens on")
        if problems:
            raise Problems(*problems)
        return f"{n} settings known"

    def check_compose_network(self):
        """built services listen on all interfaces, schedulers are set up for containers, published ports are listened on"""
        problems, services = [], self.services
        for svc, argv, binary in self.built():
            env = svc.env(self.root)
            if binary in LISTEN:
                env_name, flag, default = LISTEN[binary]
                addr = arg_value(argv, flag) or interp(env.get(env_name)) or default
                host = split_hostport(addr)[0] if addr else None
                if addr and host not in ("0.0.0.0", "::", ""):
                    problems.append(f"service {svc.name}: {env_name}={addr} is unreachable from other containers; use 0.0.0.0:PORT")
            if binary == "dotjob-scheduler":
                for k, want in SCHEDULER_PINNED_ENV.items():
                    if str(interp(env.get(k))) != want:
                        problems.append(f"service {svc.name}: set {k}={want} (got {env.get(k)!r})")
                if not interp(env.get("DOTJOB_ADMIN_TOKEN")):
                    problems.append(f"service {svc.name}: a scheduler on a non-loopback address needs DOTJOB_ADMIN_TOKEN")
        published: dict[str, str] = {}
        for svc in services.values():
            listening = self.listen_ports(svc)
            for p in svc.spec.get("ports") or []:
                if isinstance(p, dict):
                    host, target = str(p.get("published", "")), str(p.get("target", ""))
                else:
                    parts = str(p).split("/")[0].split(":")
                    host, target = (parts[-2] if len(parts) > 1 else ""), parts[-1]
                if host:
                    if host in published:
                        problems.append(f"host port {host} published by both {published[host]} and {svc.name}")
                    published[host] = svc.name
                if listening and target.isdigit() and int(target) not in listening:
                    problems.append(f"service {svc.name}: publishes container port {target}, but it listens on {sorted(listening)}")
        if problems:
            raise Problems(*problems)
        return f"published host ports {', '.join(sorted(published, key=int))}"

    # ---- Dockerfile

    def check_dockerfile_binaries(self):
        """the Dockerfile builds (-p) and installs exactly the binaries compose runs"""
        problems, summary = [], []
        by_file: dict[str, tuple[Service, set[str]]] = {}
        for svc, argv, binary in self.built():
            by_file.setdefault(rel(self.root, svc.build_dirs(self.root)[1]), (svc, set()))[1].add(binary)
        for name, (svc, runs) in sorted(by_file.items()):
            df = self.dockerfile_for(svc)
            builds = df.cargo_builds()
            if not builds:
                problems.append(f"{name}: no `cargo build` step")
                continue
            built: set[str] = set()
            for stage, cmd in builds:
                pkgs, bins, errs = cargo_targets(cmd, self.ws)
                problems += [f"{name}: {e}" for e in errs]
                built |= bins
                for flag in ("--release", "--locked"):
                    if flag not in cmd:
                        problems.append(f"{name}: `cargo build` without {flag}")
            if built != runs:
                if runs - built:
                    problems.append(f"{name}: compose runs {sorted(runs - built)} but the Dockerfile does not build them")
                if built - runs:
                    problems.append(f"{name}: builds {sorted(built - runs)} which no compose service runs")
            final = len(df.stages) - 1
            installed = set()
            for stage, opts, srcs, dest in df.copies():
                if stage == final and "from" in opts and dest.rstrip("/") == "/usr/local/bin":
                    installed |= {PurePosixPath(s).name for s in srcs}
            if runs - installed:
                problems.append(f"{name}: final stage does not COPY {sorted(runs - installed)} into /usr/local/bin")
            cmd = df.cmd()
            if cmd and binary_of(cmd) not in built:
                problems.append(f"{name}: CMD runs {binary_of(cmd)}, which is not built")
            summary.append(f"{name}: {', '.join(sorted(built))}")
        if problems:
            raise Problems(*problems)
        return "; ".join(summary)

    def check_dockerfile_context(self):
        """Dockerfile: pinned base images, sufficient Rust toolchain, COPY sources exist and cover the workspace, non-root runtime, .dockerignore"""
        problems, files = [], {}
        for svc in self.services.values():
            if svc.built:
                files[rel(self.root, svc.build_dirs(self.root)[1])] = svc
        for name, svc in sorted(files.items()):
            df = self.dockerfile_for(svc)
            ctx = svc.build_dirs(self.root)[0]
            stage_names = {s["name"] for s in df.stages if s["name"]}
            for s in df.stages:
                if s["image"] not in stage_names:
                    why = image_tag_problem(s["image"])
                    if why:
                        problems.append(f"{name}: FROM {why}")
            # The toolchain of the stage that runs cargo build must satisfy rust-version.
            want = self.ws.rust_version
            for stage, _ in df.cargo_builds():
                img = df.stages[stage]["image"]
                m = re.match(r"(?:.*/)?rust:(\d+)\.(\d+)", img)
                if not m:
                    problems.append(f"{name}: builder image {img} does not pin a Rust version (rust:1.NN-...)")
                elif want and (int(m.group(1)), int(m.group(2))) < tuple(int(x) for x in want.split(".")[:2]):
                    problems.append(f"{name}: builder {img} is older than the workspace rust-version {want}")
            # COPY sources from the context must exist and not be dockerignored.
            ignore = []
            di = ctx / ".dockerignore"
            if di.is_file():
                ignore = [l.strip().strip("/") for l in di.read_text().splitlines()
                          if l.strip() and not l.strip().startswith(("#", "!"))]
            else:
                problems.append(f"{rel(self.root, di)}: missing (the build context would include target/)")
            for must in ("target", ".git"):
                if di.is_file() and must not in ignore:
                    problems.append(f"{rel(self.root, di)}: does not exclude {must}/")
            copied = []
            for stage, opts, srcs, dest in df.copies():
                if "from" in opts:
                    continue
                for src in srcs:
                    norm = str(PurePosixPath(src.lstrip("/"))) if src not in (".", "./") else "."
                    copied.append(norm)
                    wildcard = any(c in norm for c in "*?[")
                    if not (list(ctx.glob(norm)) if wildcard else (ctx / norm).exists()):
                        problems.append(f"{name}: COPY {src}: not found in the build context")
                    for pat in ignore:
                        pat_n = pat[3:] if pat.startswith("**/") else pat
                        if fnmatch.fnmatch(norm, pat) or fnmatch.fnmatch(PurePosixPath(norm).name, pat_n) or norm.startswith(pat + "/"):
                            problems.append(f"{name}: COPY {src} is excluded by .dockerignore pattern {pat}")
            if df.cargo_builds():
                needed = ["Cargo.toml"] + self.ws.members
                if any("--locked" in cmd for _, cmd in df.cargo_builds()):
                    needed.append("Cargo.lock")
                    if not (ctx / "Cargo.lock").is_file():
                        problems.append(f"{name}: cargo build --locked but there is no Cargo.lock")
                for need in needed:
                    if not any(c == "." or c == need or need.startswith(c + "/") for c in copied):
                        problems.append(f"{name}: the builder never COPYs {need} (cargo needs every workspace member)")
            users = df.of("USER", len(df.stages) - 1)
            if not users or users[-1][1].split(":")[0] in ("root", "0"):
                problems.append(f"{name}: the runtime stage must switch to a non-root USER")
        if problems:
            raise Problems(*problems)
        return f"{', '.join(sorted(files))}: members {', '.join(self.ws.members)} copied"

    # ---- Prometheus

    def check_prometheus(self):
        """dashboards/prometheus.yml parses, is mounted, and scrapes compose services on the ports they listen on"""
        problems, services = [], self.services
        path = self.root / "dashboards/prometheus.yml"
        conf = load_yaml(path)
        prom = self.find_service("prom/prometheus")
        conf_in_container = arg_value(prom.argv(None), "--config.file") or PROMETHEUS_CONFIG
        if self.host_path(prom, conf_in_container) != path.resolve():
            problems.append(f"service {prom.name}: does not mount dashboards/prometheus.yml at {conf_in_container}")
        jobs = (conf or {}).get("scrape_configs") or []
        if not jobs:
            problems.append("dashboards/prometheus.yml: no scrape_configs")
        scraped: set[tuple[str, int]] = set()
        for job in jobs:
            jn = job.get("job_name", "?")
            for key in job:
                if key.endswith("_sd_configs") and key != "dns_sd_configs":
                    problems.append(f"job {jn}: {key} is not usable in plain Compose")
            targets = []
            for sc in job.get("static_configs") or []:
                for t in sc.get("targets") or []:
                    host, port = split_hostport(str(t))
                    targets.append((host, port, "static"))
            for dc in job.get("dns_sd_configs") or []:
                if dc.get("type", "SRV") not in ("A", "AAAA"):
                    problems.append(f"job {jn}: dns_sd_configs type {dc.get('type', 'SRV')}: Compose DNS answers A queries only")
                for n in dc.get("names") or []:
                    targets.append((n, dc.get("port"), "dns"))
            for host, port, how in targets:
                if host not in services:
                    problems.append(f"job {jn}: target {host}:{port} is not a compose service")
                    continue
                listening = self.listen_ports(services[host])
                if port not in listening:
                    problems.append(f"job {jn}: {host} listens on {sorted(listening) or 'nothing'}, not {port}")
                if how == "static" and services[host].replicas() > 1:
                    problems.append(f"job {jn}: {host} has {services[host].replicas()} replicas; a static target reaches one. Use dns_sd_configs type A")
                scraped.add((host, port))
        for svc, argv, binary in self.built():
            for port in self.listen_ports(svc):
                if (svc.name, port) not in scraped:
                    problems.append(f"service {svc.name} serves /metrics on {port} but no scrape job targets it")
        if problems:
            raise Problems(*problems)
        return f"{len(jobs)} jobs; targets {', '.join(f'{h}:{p}' for h, p in sorted(scraped))}"

    # ---- Grafana

    def grafana(self) -> tuple[Service, Path, list[dict], list[dict]]:
        """(service, provisioning host dir, datasources, dashboard providers)."""
        def load():
            graf = self.find_service("grafana/grafana")
            prov_path = interp(graf.env(self.root).get("GF_PATHS_PROVISIONING")) or GRAFANA_PROVISIONING
            prov = self.host_path(graf, prov_path)
            if prov is None or not prov.is_dir():
                raise Problems(f"service {graf.name}: no bind mount of a repo directory at {prov_path}")
            datasources, providers = [], []
            for sub, key, into in (("datasources", "datasources", datasources), ("dashboards", "providers", providers)):
                files = sorted([*(prov / sub).glob("*.yml"), *(prov / sub).glob("*.yaml")])
                if not files:
                    raise Problems(f"{rel(self.root, prov / sub)}: no provisioning files")
                for f in files:
                    doc = load_yaml(f)
                    if not isinstance(doc, dict) or doc.get("apiVersion") != 1 or not isinstance(doc.get(key), list):
                        raise Problems(f"{rel(self.root, f)}: needs apiVersion: 1 and a `{key}` list")
                    into += [dict(item, _file=rel(self.root, f)) for item in doc[key]]
            return graf, prov, datasources, providers
        return self._get("Grafana provisioning", load)

    def dashboard_files(self) -> list[Path]:
        graf, _, _, providers = self.grafana()
        out = []
        for p in providers:
            if p.get("type", "file") == "file":
                host = self.host_path(graf, ((p.get("options") or {}).get("path") or ""))
                if host and host.is_dir():
                    out += sorted(host.rglob("*.json"))
        return out

    def check_grafana_provisioning(self):
        """Grafana provisioning parses and points at mounted paths and compose services"""
        graf, prov, datasources, providers = self.grafana()
        problems, services = [], self.services
        for ds in datasources:
            where = f"{ds['_file']}: datasource {ds.get('name')}"
            if not ds.get("uid"):
                problems.append(f"{where}: no uid (dashboards refer to it by uid)")
            m = re.fullmatch(r"https?://([^:/]+)(?::(\d+))?/?", str(ds.get("url", "")))
            if not m:
                problems.append(f"{where}: url {ds.get('url')!r} is not http://SERVICE:PORT")
            elif m.group(1) not in services:
                problems.append(f"{where}: url host {m.group(1)} is not a compose service")
            elif int(m.group(2) or 80) not in self.listen_ports(services[m.group(1)]):
                problems.append(f"{where}: {m.group(1)} does not listen on {m.group(2) or 80}")
        for p in providers:
            where = f"{p['_file']}: provider {p.get('name')}"
            cpath = (p.get("options") or {}).get("path")
            host = self.host_path(graf, cpath or "")
            if not cpath or host is None:
                problems.append(f"{where}: path {cpath!r} is not bind-mounted into service {graf.name}")
            elif not host.is_dir() or not list(host.rglob("*.json")):
                problems.append(f"{where}: {cpath} maps to {rel(self.root, host)}, which has no dashboard JSON")
        home = interp(graf.env(self.root).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"))
        if home:
            host = self.host_path(graf, home)
            if host is None or not host.is_file():
                problems.append(f"service {graf.name}: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a mounted file")
        if problems:
            raise Problems(*problems)
        return (f"{rel(self.root, prov)}: datasources {', '.join(str(d.get('uid')) for d in datasources)}; "
                f"dashboards {', '.join(rel(self.root, f) for f in self.dashboard_files())}")

    def check_dashboards(self):
        """dashboard JSON parses; every dotjob_* metric it queries is emitted by the Rust sources; datasources and variables resolve"""
        _, _, datasources, _ = self.grafana()
        ds_uids = {str(d.get("uid")) for d in datasources} | GRAFANA_BUILTIN_DS
        ds_names = {str(d.get("name")) for d in datasources}
        emitted = self.ws.metrics
        files = self.dashboard_files()
        if not files:
            raise Problems("no dashboard JSON found through the Grafana providers")
        problems, used, uids = [], set(), {}
        for f in files:
            name = rel(self.root, f)
            try:
                dash = json.loads(f.read_text())
            except json.JSONDecodeError as e:
                problems.append(f"{name}: not valid JSON: {e}")
                continue
            if not isinstance(dash.get("schemaVersion"), int):
                problems.append(f"{name}: no integer schemaVersion")
            uid = dash.get("uid")
            if not uid:
                problems.append(f"{name}: no uid")
            elif uid in uids:
                problems.append(f"{name}: uid {uid} also used by {uids[uid]}")
            uids[uid] = name
            variables = {v.get("name") for v in (dash.get("templating") or {}).get("list", [])}

            def check_ds(ds, where):
                if isinstance(ds, dict) and ds.get("uid") is not None:
                    u = str(ds["uid"])
                    if not u.startswith("$") and u not in ds_uids:
                        problems.append(f"{where}: datasource uid {u!r} is not provisioned ({', '.join(sorted(ds_uids))})")
                elif isinstance(ds, str) and not ds.startswith("$") and ds not in ds_names | ds_uids:
                    problems.append(f"{where}: datasource {ds!r} is not provisioned")

            def check_expr(expr, where):
                for tok in re.findall(r"dotjob_[a-z_]+", expr):
                    base, suffix = tok, ""
                    for s in HISTOGRAM_SUFFIXES:
                        if tok.endswith(s):
                            base, suffix = tok[: -len(s)], s
                    used.add(base)
                    kind = emitted.get(base)
                    if kind is None:
                        problems.append(f"{where}: metric {tok} ({base}) is not emitted by {', '.join(RUST_SRC_DIRS)}")
                    elif suffix and kind not in ("histogram", "?"):
                        problems.append(f"{where}: {tok}: {base} is a {kind}, it has no {suffix} series")
                    elif not suffix and kind == "histogram":
                        problems.append(f"{where}: {tok} is a histogram; query {tok}_bucket/_sum/_count")
                for var in re.findall(r"\$\{?([A-Za-z_]\w*)", expr):
                    if not var.startswith("__") and var not in variables:
                        problems.append(f"{where}: uses ${var}, which is not a dashboard variable")

            def walk(panels):
                ids = []
                for p in panels or []:
                    where = f"{name}: panel {p.get('title')!r}"
                    ids.append(p.get("id"))
                    check_ds(p.get("datasource"), where)
                    if p.get("type") != "row" and "gridPos" not in p:
                        problems.append(f"{where}: no gridPos")
                    for t in p.get("targets") or []:
                        check_ds(t.get("datasource"), where)
                        if isinstance(t.get("expr"), str):
                            check_expr(t["expr"], where)
                    ids += walk(p.get("panels"))
                return ids

            ids = walk(dash.get("panels"))
            dup = {i for i in ids if ids.count(i) > 1}
            if dup:
                problems.append(f"{name}: duplicate panel ids {sorted(dup)}")
            if not ids:
                problems.append(f"{name}: no panels")
            for v in (dash.get("templating") or {}).get("list", []):
                where = f"{name}: variable {v.get('name')}"
                check_ds(v.get("datasource"), where)
                q = v.get("query")
                for expr in (q.get("query") if isinstance(q, dict) else q, v.get("definition")):
                    if isinstance(expr, str):
                        check_expr(expr, where)
        if problems:
            raise Problems(*problems)
        return f"{len(files)} dashboard(s); metrics {', '.join(sorted(used))}"

    # ---- healthchecks

    def check_compose_healthchecks(self):
        """built services' healthchecks ask /readyz, a route their binary serves, on a port it listens on"""
        problems, n = [], 0
        for svc, argv, binary in self.built():
            if binary not in self.ws.binaries:
                continue
            hc = svc.spec.get("healthcheck") or {}
            test = hc.get("test")
            text = " ".join(test) if isinstance(test, list) else str(test or "")
            if not text:
                problems.append(f"service {svc.name}: no healthcheck")
                continue
            n += 1
            paths = set(re.findall(r"(?:GET|wget[^\n]*?https?://[^/\s]+)\s*(/[A-Za-z0-9_./-]*)", text))
            routes = self.ws.binary_routes(binary)
            if HEALTHCHECK_ROUTE not in paths:
                problems.append(f"service {svc.name}: healthcheck does not GET {HEALTHCHECK_ROUTE} ({text})")
            for path in paths - routes:
                problems.append(f"service {svc.name}: healthcheck asks {path}, which {binary} does not serve ({', '.join(sorted(routes))})")
            ports = {int(p) for p in re.findall(r"/dev/tcp/[^/]+/(\d+)", text)}
            for port in ports - self.listen_ports(svc):
                problems.append(f"service {svc.name}: healthcheck connects to port {port}; it listens on {sorted(self.listen_ports(svc))}")
            if "curl" in text.split() or "wget" in text.split():
                problems.append(f"service {svc.name}: the dotjob image has no curl or wget; use bash's /dev/tcp")
        if problems:
            raise Problems(*problems)
        return f"{n} healthchecks on {HEALTHCHECK_ROUTE}"

    # ---- alerting rules

    def check_alert_rules(self):
        """alerting rules are loaded by prometheus.yml, mounted by compose, well formed (promtool if present), and query emitted metrics"""
        problems = []
        conf = load_yaml(self.root / "dashboards/prometheus.yml") or {}
        prom = self.find_service("prom/prometheus")
        rule_files = conf.get("rule_files") or []
        if not rule_files:
            problems.append("dashboards/prometheus.yml: no rule_files")
        hosts = []
        for rf in rule_files:
            host = self.host_path(prom, str(rf))
            if host is None or not host.is_file():
                problems.append(f"dashboards/prometheus.yml: rule file {rf} is not a repo file mounted into service {prom.name}")
            else:
                hosts.append(host)
        if (self.root / ALERT_RULES).resolve() not in hosts:
            problems.append(f"{ALERT_RULES} is not loaded through rule_files and a compose mount")
        names = set()
        for host in hosts:
            name = rel(self.root, host)
            doc = load_yaml(host)
            groups = (doc or {}).get("groups") if isinstance(doc, dict) else None
            if not isinstance(groups, list) or not groups:
                problems.append(f"{name}: needs a non-empty `groups` list")
                continue
            for g in groups:
                if not isinstance(g, dict) or not g.get("name") or not isinstance(g.get("rules"), list):
                    problems.append(f"{name}: every group needs a name and a rules list")
                    continue
                for r in g["rules"]:
                    what = r.get("alert") or r.get("record")
                    where = f"{name}: rule {what!r}"
                    if not what or ("alert" in r) == ("record" in r):
                        problems.append(f"{where}: exactly one of alert/record")
                    names.add(r.get("alert"))
                    if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                        problems.append(f"{where}: no expr")
                        continue
                    if "for" in r and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(r["for"])):
                        problems.append(f"{where}: `for: {r['for']}` is not a duration")
                    for key in ("labels", "annotations"):
                        if key in r and not all(isinstance(v, str) for v in (r[key] or {}).values()):
                            problems.append(f"{where}: {key} values must be strings")
                    if r.get("alert") and not (r.get("annotations") or {}).get("summary"):
                        problems.append(f"{where}: no summary annotation")
                    for tok in re.findall(r"dotjob_[a-z_]+", r["expr"]):
                        base = next((tok[: -len(x)] for x in HISTOGRAM_SUFFIXES if tok.endswith(x)), tok)
                        if base not in self.ws.metrics:
                            problems.append(f"{where}: metric {tok} is not emitted by {', '.join(RUST_SRC_DIRS)}")
            promtool = shutil.which("promtool")
            if promtool:
                out = subprocess.run([promtool, "check", "rules", str(host)], capture_output=True, text=True)
                if out.returncode != 0:
                    problems.append(f"{name}: promtool check rules failed: {(out.stdout + out.stderr).strip()}")
        for missing in sorted(REQUIRED_ALERTS - names):
            problems.append(f"{ALERT_RULES}: no alert {missing}")
        if problems:
            raise Problems(*problems)
        return f"{len(names - {None})} alerts; promtool {'passed' if shutil.which('promtool') else 'not installed, structure checked'}"

    # ---- Kubernetes

    def check_kubernetes(self):
        """deploy/kubernetes parses; kinds known; images, commands, env, ports, probes and scrape annotations match the Dockerfile and the binaries"""
        problems, objects = [], []
        kdir = self.root / K8S_DIR
        files = sorted([*kdir.glob("*.yaml"), *kdir.glob("*.yml")])
        if not files:
            raise Problems(f"{K8S_DIR}: no manifests")
        for f in files:
            try:
                docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
            except yaml.YAMLError as e:
                problems.append(f"{rel(self.root, f)}: not valid YAML: {e}")
                continue
            for d in docs:
                where = f"{rel(self.root, f)}: {d.get('kind')} {(d.get('metadata') or {}).get('name')}"
                kind = d.get("kind")
                if kind not in K8S_KINDS:
                    problems.append(f"{where}: kind {kind!r} is not one this example uses ({', '.join(sorted(K8S_KINDS))})")
                elif d.get("apiVersion") != K8S_KINDS[kind]:
                    problems.append(f"{where}: apiVersion {d.get('apiVersion')!r}; {kind} is {K8S_KINDS[kind]}")
                elif kind != "Kustomization" and not (d.get("metadata") or {}).get("name"):
                    problems.append(f"{where}: no metadata.name")
                objects.append((where, f, d))
        by_kind = lambda k: [(w, d) for w, _, d in objects if d.get("kind") == k]
        names = lambda k: {(d.get("metadata") or {}).get("name") for _, d in by_kind(k)}
        for w, d in by_kind("Kustomization"):
            listed = {(kdir / r).resolve() for r in d.get("resources") or []}
            for f in files:
                if f.name not in ("kustomization.yaml", "kustomization.yml") and f.resolve() not in listed:
                    problems.append(f"{w}: does not list {f.name}")
            for r in listed - {f.resolve() for f in files}:
                problems.append(f"{w}: lists {rel(self.root, r)}, which does not exist")
        secrets = {((d.get("metadata") or {}).get("name")): set((d.get("stringData") or {}) | (d.get("data") or {})) for _, d in by_kind("Secret")}
        configmaps = {((d.get("metadata") or {}).get("name")): d.get("data") or {} for _, d in by_kind("ConfigMap")}

        # The image the Dockerfile builds: tag = the workspace version; its user.
        version = tomllib.loads((self.root / "Cargo.toml").read_text()).get("workspace", {}).get("package", {}).get("version")
        df = Dockerfile(self.root / "Dockerfile")
        df_user = (df.of("USER", len(df.stages) - 1) or [(0, "")])[-1][1].split(":")[0]
        installed = {PurePosixPath(t).name for _, r in df.of("COPY", len(df.stages) - 1) for t in shlex.split(r) if not t.startswith("--")}
        deployed = {}
        for w, d in by_kind("Deployment"):
            spec = d.get("spec") or {}
            tmpl = spec.get("template") or {}
            pod_labels = (tmpl.get("metadata") or {}).get("labels") or {}
            sel = (spec.get("selector") or {}).get("matchLabels") or {}
            if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
                problems.append(f"{w}: selector {sel} does not match the pod labels {pod_labels}")
            pod = tmpl.get("spec") or {}
            psc = pod.get("securityContext") or {}
            if str(psc.get("runAsUser", "")) != df_user or not psc.get("runAsNonRoot"):
                problems.append(f"{w}: securityContext should say runAsNonRoot and runAsUser {df_user} (the Dockerfile's USER)")
            annotations = (tmpl.get("metadata") or {}).get("annotations") or {}
            for c in pod.get("containers") or []:
                cw = f"{w}: container {c.get('name')}"
                image = str(c.get("image", ""))
                if image_name(image) != "dotjob" or image.rsplit(":", 1)[-1] != version:
                    problems.append(f"{cw}: image {image!r}; the Dockerfile's image is dotjob:{version} (`docker build -t dotjob:{version} .`)")
                argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
                binary = binary_of(argv)
                if binary not in self.ws.binaries or binary not in installed:
                    problems.append(f"{cw}: command {argv} does not run a binary the Dockerfile installs ({', '.join(sorted(installed & set(self.ws.binaries)))})")
                    continue
                deployed[binary] = (w, spec.get("replicas", 1))
                envs, flags = self.ws.binary_args(binary)
                known = envs | ALWAYS_ENV | ALLOWED_SOON_ENV.get(binary, set())
                for tok in argv[1:]:
                    if tok.startswith("-") and tok.split("=", 1)[0] not in flags:
                        problems.append(f"{cw}: {binary} has no flag {tok.split('=', 1)[0]}")
                env = {}
                for ef in c.get("envFrom") or []:
                    ref = (ef.get("configMapRef") or {}).get("name")
                    if ref not in configmaps:
                        problems.append(f"{cw}: envFrom ConfigMap {ref!r} is not defined here")
                    env.update(configmaps.get(ref, {}))
                for e in c.get("env") or []:
                    env[e.get("name")] = e.get("value")
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref and ref.get("key") not in secrets.get(ref.get("name"), set()):
                        problems.append(f"{cw}: {e.get('name')} reads key {ref.get('key')!r} of Secret {ref.get('name')!r}, which is not defined here")
                for k, v in env.items():
                    if k not in known:
                        problems.append(f"{cw}: {binary} does not read {k}")
                    if isinstance(v, bool):
                        problems.append(f"{cw}: {k} is a YAML boolean; quote it")
                for flag, env_name in REQUIRED_ARGS.get(binary, []):
                    if arg_value(argv, flag) is None and not env.get(env_name):
                        problems.append(f"{cw}: {binary} needs {flag} or {env_name}")
                if binary == "dotjob-scheduler":
                    for k, v in SCHEDULER_PINNED_ENV.items():
                        if str(env.get(k)) != v:
                            problems.append(f"{cw}: set {k}={v}")
                    for k in ("DOTJOB_ADMIN_TOKEN", "DOTJOB_READ_TOKEN"):
                        if not any(e.get("name") == k and "secretKeyRef" in (e.get("valueFrom") or {}) for e in c.get("env") or []):
                            problems.append(f"{cw}: {k} must come from a Secret (valueFrom.secretKeyRef)")
                env_name, flag, default = LISTEN[binary]
                addr = arg_value(argv, flag) or env.get(env_name) or default
                host, port = split_hostport(str(addr)) if addr else (None, None)
                if host not in ("0.0.0.0", "::", "[::]", ""):
                    problems.append(f"{cw}: {env_name} {addr!r} is not reachable from outside the pod; listen on 0.0.0.0")
                ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
                if port not in ports.values():
                    problems.append(f"{cw}: containerPort {sorted(ports.values())} does not include {port}, where {binary} listens ({env_name})")
                routes = self.ws.binary_routes(binary)
                for probe, path in K8S_PROBES.items():
                    get = ((c.get(probe) or {}).get("httpGet")) or {}
                    pport = ports.get(get.get("port"), get.get("port"))
                    if get.get("path") != path:
                        problems.append(f"{cw}: {probe} should GET {path}")
                    elif path not in routes:
                        problems.append(f"{cw}: {probe} path {path} is not a route of {binary}")
                    if pport != port:
                        problems.append(f"{cw}: {probe} port {get.get('port')!r} is not {port}")
                if annotations.get("prometheus.io/scrape") != "true" or str(annotations.get("prometheus.io/port")) != str(port) \
                        or annotations.get("prometheus.io/path", "/metrics") not in routes:
                    if not by_kind("ServiceMonitor") and not by_kind("PodMonitor"):
                        problems.append(f"{cw}: needs prometheus.io/scrape \"true\", prometheus.io/port \"{port}\" and a /metrics path (or a ServiceMonitor)")
        for binary in ("dotjob-scheduler", "dotjob-worker"):
            if binary not in deployed:
                problems.append(f"{K8S_DIR}: no Deployment runs {binary}")
            elif binary in K8S_REPLICAS and deployed[binary][1] != K8S_REPLICAS[binary]:
                problems.append(f"{deployed[binary][0]}: replicas {deployed[binary][1]}, expected {K8S_REPLICAS[binary]}")
        deployments = [d for _, d in by_kind("Deployment")]
        for w, d in by_kind("Service"):
            sel = (d.get("spec") or {}).get("selector") or {}
            pods = [((x.get("spec") or {}).get("template") or {}) for x in deployments]
            match = [t for t in pods if sel and all(((t.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in sel.items())]
            if not match:
                problems.append(f"{w}: selector {sel} matches no Deployment's pods")
                continue
            cports = {(p.get("name"), p.get("containerPort")) for t in match for c in (t.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []}
            for p in (d.get("spec") or {}).get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                if not any(tp in pair for pair in cports):
                    problems.append(f"{w}: targetPort {tp!r} is not a port of the selected pods")
        if problems:
            raise Problems(*problems)
        return f"{len(objects)} objects in {len(files)} files; " + ", ".join(f"{b} x{r}" for b, (_, r) in sorted(deployed.items()))

    # ---- runner

    CHECKS = [
        check_compose_services, check_compose_images, check_compose_builds, check_compose_mounts,
        check_compose_dependencies, check_compose_commands, check_compose_env, check_compose_network,
        check_dockerfile_binaries, check_dockerfile_context, check_prometheus,
        check_grafana_provisioning, check_dashboards, check_compose_healthchecks, check_alert_rules,
        check_kubernetes,
    ]

    def run(self) -> int:
        failed = 0
        for check in self.CHECKS:
            title = check.__doc__.strip()
            try:
                detail = check(self)
            except Problems as e:
                failed += 1
                print(f"FAIL  {title}")
                for p in e.problems:
                    print(f"        - {p}")
                continue
            print(f"ok    {title}" + (f" ({detail})" if detail and detail != "ok" else ""))
        total = len(self.CHECKS)
        if failed:
            print(f"\ncheck_deploy: {failed} of {total} checks FAILED (root {self.root})", file=sys.stderr)
            return 1
        print(f"\ncheck_deploy: all {total} checks passed")
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                    help="repository root to check (default: the repo holding this script)")
    args = ap.parse_args()
    root = args.root.resolve()
    if not (root / "Cargo.toml").is_file():
        print(f"check_deploy: {root} is not the workspace root (no Cargo.toml)", file=sys.stderr)
        return 2
    return Checker(root).run()


if __name__ == "__main__":
    sys.exit(main())
