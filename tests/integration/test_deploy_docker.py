"""deploy/docker/Dockerfile (issue 7 item 3). No Docker engine runs here, so the
tests read the Dockerfile: its instructions, that every path it copies exists, that
the runtime packages cover what the binary links, and that the image's default
connector configuration is accepted by the binary."""

import json
import os
import re
import shlex
import signal
import subprocess
import tempfile

import yaml

from harness import REPO, free_port, http_get, portcullis_path, wait_until

DOCKER_DIR = os.path.join(REPO, "deploy", "docker")
DOCKERFILE = os.path.join(DOCKER_DIR, "Dockerfile")


def instructions():
    """(INSTRUCTION, argument text) with continuation lines joined and comments dropped."""
    out, cur = [], ""
    with open(DOCKERFILE) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def stages():
    """Instructions split by FROM: [(from_args, [(instr, args), ...]), ...]."""
    result = []
    for ins, args in instructions():
        if ins == "FROM":
            result.append((args, []))
        elif result:
            result[-1][1].append((ins, args))
    return result


def global_args():
    out = {}
    for ins, args in instructions():
        if ins == "FROM":
            break
        if ins == "ARG" and "=" in args:
            k, v = args.split("=", 1)
            out[k] = v
    return out


def version_text():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


def test_multi_stage_from_bookworm_slim():
    st = stages()
    assert len(st) == 2
    base = global_args()
    for from_args, _ in st:
        image = from_args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: base[m.group(1)], image)
        assert image == "debian:bookworm-slim"
    assert st[0][0].split()[-1] == "build" and "AS" in st[0][0].upper()


def test_builds_with_the_projects_own_scripts():
    build = stages()[0][1]
    runs = [a for i, a in build if i == "RUN"]
    assert any(a == "bash scripts/deps.sh" for a in runs)
    assert any(a.startswith("make release") for a in runs)
    # make release builds into the release preset's binaryDir, which stage 2 copies from.
    with open(os.path.join(REPO, "CMakePresets.json")) as f:
        presets = yaml.safe_load(f)
    release = [p for p in presets["configurePresets"] if p["name"] == "release"][0]
    final = stages()[1][1]
    copies = [a for i, a in final if i == "COPY" and a.startswith("--from=build")]
    assert copies == [f"--from=build /src/{release['binaryDir']}/portcullis "
                      "/usr/local/bin/portcullis"]


def test_every_copied_path_exists():
    seen = 0
    for _, body in stages():
        for ins, args in body:
            if ins not in ("COPY", "ADD") or args.startswith("--from"):
                continue
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            for src in parts[:-1]:
                assert os.path.exists(os.path.join(REPO, src)), src
                seen += 1
    assert seen >= 5
    # What the build context leaves out must not hide anything a COPY needs.
    with open(DOCKERFILE + ".dockerignore") as f:
        ignored = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    assert ".git" in ignored and "build" in ignored and "build-*" in ignored


def test_runtime_image_non_root_volume_ports_healthcheck():
    final = dict()
    for ins, args in stages()[1][1]:
        final.setdefault(ins, []).append(args)
    (user,) = final["USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert re.search(r"useradd .*--uid " + re.escape(user.split(":")[0]), " ".join(final["RUN"]))
    run = " ".join(final["RUN"])
    assert re.search(r"apt-get install .*\betcd-server\b", run)
    (volume,) = final["VOLUME"]
    with open(os.path.join(DOCKER_DIR, "connector.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert yaml.safe_load(volume) == [cfg["log_spool"]["dir"], cfg["cluster"]["data_dir"]]
    # Both exist in the image, owned by the runtime user, so fresh volumes inherit that.
    assert re.search(r"mkdir -p /var/lib/portcullis/logs /var/lib/portcullis/etcd", run)
    assert "chown -R portcullis:portcullis /var/lib/portcullis" in run
    exposed = set(" ".join(final["EXPOSE"]).split())
    assert {"8080", "2379", "2380"} <= exposed
    assert cfg["health"]["listen"].endswith(":8080")
    (hc,) = final["HEALTHCHECK"]
    cmd = yaml.safe_load(hc.split("CMD", 1)[1].strip())
    assert cmd[:2] == ["portcullis", "healthcheck"]
    assert cmd[cmd.index("--url") + 1] == "http://127.0.0.1:8080/ready"
    assert final["ENTRYPOINT"] == ['["portcullis"]']
    assert final["STOPSIGNAL"] == ["SIGTERM"]


def test_labelled_and_tagged_by_version():
    text = open(DOCKERFILE).read()
    final = stages()[1][1]
    assert ("ARG", "VERSION") in final
    labels = " ".join(a for i, a in final if i == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    # The documented build command tags by the VERSION file and passes it as the build arg.
    assert '--build-arg VERSION="$(cat VERSION)"' in text
    assert '-t portcullis:"$(cat VERSION)"' in text
    # A mismatching build arg fails the build.
    build = stages()[0][1]
    assert any("VERSION" in a and "exit 1" in a for i, a in build if i == "RUN")


def needed_packages(binary):
    """Debian packages that ship the shared libraries binary links directly."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                         check=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)
    pkgs = set()
    for lib in libs:
        if lib.startswith(("libc.so", "libm.so", "ld-linux", "libpthread", "libdl")):
            continue  # libc6: in every Debian image
        if lib.startswith(("libasan", "libubsan", "liblsan", "libtsan", "libclang_rt")):
            continue  # sanitizer builds only; the image is built by make release
        r = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        assert r.returncode == 0, f"no package ships {lib}"
        pkgs.add(r.stdout.split(":")[0])
    return pkgs


def test_runtime_packages_cover_the_linked_libraries():
    run = " ".join(a for i, a in stages()[1][1] if i == "RUN")
    installed = set(re.findall(r"[a-z0-9][a-z0-9.+-]+", run.split("apt-get install", 1)[1]))
    missing = needed_packages(portcullis_path()) - installed
    assert not missing, f"runtime stage lacks {missing}"


def run_config_text(text, env):
    """Start the binary on a deployment's connector.yaml, with its fixed health port
    and paths moved to free/temporary ones; check it starts, serves /health and stops
    with 0. Returns the parsed log lines."""
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="pc-deploy-")
    text = re.sub(r"0\.0\.0\.0:\d+", f"127.0.0.1:{port}", text)
    text = text.replace("/var/lib/portcullis/logs", os.path.join(tmp, "logs"))
    text = text.replace("/var/lib/portcullis/etcd", os.path.join(tmp, "etcd"))
    path = os.path.join(tmp, "connector.yaml")
    with open(path, "w") as f:
        f.write(text)
    penv = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    penv.update(env)
    proc = subprocess.Popen([portcullis_path(), "connector", "-c", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=penv)
    try:
        wait_until(lambda: http_get(port, "/health")[0] == 200 or proc.poll() is not None,
                   20, what="health")
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return [json.loads(l) for l in err.splitlines() if l.startswith("{")]


def test_default_image_config_is_accepted():
    with open(os.path.join(DOCKER_DIR, "connector.yaml")) as f:
        text = f.read()
    logs = run_config_text(text, {"HOSTNAME": "img-1",
                                  "PORTCULLIS_CONTROL_PLANE_URL": "http://127.0.0.1:9",
                                  "PORTCULLIS_TOKEN": "pc-test-token-value"})
    assert logs[0]["msg"] == "starting" and logs[0]["instance"] == "img-1"
    assert "pc-test-token-value" not in json.dumps(logs)


def test_default_image_config_requires_the_token():
    with open(os.path.join(DOCKER_DIR, "connector.yaml")) as f:
        text = f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update({"HOSTNAME": "img-1", "PORTCULLIS_CONTROL_PLANE_URL": "http://127.0.0.1:9"})
    r = subprocess.run([portcullis_path(), "connector", "-c", f.name], capture_output=True,
                       text=True, env=env, timeout=30)
    os.unlink(f.name)
    assert r.returncode == 2
    assert "PORTCULLIS_TOKEN" in r.stderr
