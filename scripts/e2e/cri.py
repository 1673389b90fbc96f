#!/usr/bin/python3
"""A small CRI client: runs one pod with one container through containerd's
CRI plugin, as the kubelet would, and prints the container's log.

    cri.py SOCKET --handler troupe --image IMAGE [--arg A]... [--env K=V]...
           [--expect TEXT]... [--timeout S] [--workdir DIR]

It generates the gRPC stubs from cri-api.proto (beside this file) with
grpc_tools (Debian: python3-grpc-tools), runs RunPodSandbox (host network,
so no CNI is needed) with the runtime handler, CreateContainer,
StartContainer, waits for the container to exit, checks its exit code (0)
and log, then stops and removes the container and the pod. Exit status 0
when every step passed.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def stubs(workdir):
    out = os.path.join(workdir, "cri-stubs")
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "api_pb2_grpc.py")):
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", HERE,
             "--python_out", out, "--grpc_python_out", out,
             os.path.join(HERE, "cri-api.proto")],
            check=True,
        )
        # protoc names the modules after the file: cri-api -> cri_api.
    sys.path.insert(0, out)
    import cri_api_pb2 as pb  # noqa: E402
    import cri_api_pb2_grpc as rpc  # noqa: E402
    return pb, rpc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("socket")
    p.add_argument("--handler", default="troupe")
    p.add_argument("--image", required=True)
    p.add_argument("--arg", action="append", default=[])
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--workdir", default=tempfile.gettempdir())
    p.add_argument("--cgroup-parent", default="", help="the pod's cgroup parent (cgroupfs)")
    a = p.parse_args()

    import grpc
    pb, rpc = stubs(a.workdir)
    ch = grpc.insecure_channel("unix://" + a.socket)
    rt = rpc.RuntimeServiceStub(ch)
    im = rpc.ImageServiceStub(ch)

    def step(msg):
        print("cri: " + msg, flush=True)

    v = rt.Version(pb.VersionRequest(version="v1"))
    step(f"runtime {v.runtime_name} {v.runtime_version}, CRI {v.runtime_api_version}")
    img = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=a.image)))
    if not img.image.id:
        step(f"image {a.image} is not in the k8s.io namespace")
        return 1
    step(f"image {a.image}: {img.image.id}")

    logdir = tempfile.mkdtemp(prefix="pod-", dir=a.workdir)
    uid = str(uuid.uuid4())
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="troupe-e2e", uid=uid, namespace="default"),
        hostname="troupe-e2e",
        log_directory=logdir,
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=a.cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )
    pod = rt.RunPodSandbox(
        pb.RunPodSandboxRequest(config=sandbox_config, runtime_handler=a.handler)
    ).pod_sandbox_id
    step(f"pod sandbox {pod[:12]} runs with handler {a.handler!r}")
    ok = False
    try:
        envs = [pb.KeyValue(key=k, value=v) for k, v in (e.split("=", 1) for e in a.env)]
        ctr = rt.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=pod,
                config=pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name="app"),
                    image=pb.ImageSpec(image=a.image),
                    args=a.arg,
                    envs=envs,
                    log_path="app.log",
                ),
                sandbox_config=sandbox_config,
            )
        ).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=ctr))
        step(f"container {ctr[:12]} started")
        deadline = time.time() + a.timeout
        while True:
            st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr)).status
            if st.state == pb.CONTAINER_EXITED:
                break
            if time.time() > deadline:
                step("timed out waiting for the container to exit")
                rt.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=5))
                break
            time.sleep(0.2)
        log = open(os.path.join(logdir, "app.log")).read()
        # CRI log lines: "TIMESTAMP STREAM P|F text"
        text = "\n".join(line.split(" ", 3)[3] for line in log.splitlines() if line.count(" ") >= 3)
        sys.stdout.write("".join("  | " + line + "\n" for line in text.splitlines()))
        step(f"container exited with {st.exit_code} ({st.reason})")
        missing = [e for e in a.expect if e not in text]
        for e in missing:
            step(f"missing from the log: {e!r}")
        ok = st.state == pb.CONTAINER_EXITED and st.exit_code == a.exit_code and not missing
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=ctr))
    finally:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
        step("pod stopped and removed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
